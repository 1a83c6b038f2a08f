// The test MMDB writer (tests/unit/mmdb_writer.h).
#include "tests/unit/mmdb_writer.h"

#include <arpa/inet.h>

#include <fstream>
#include <stdexcept>

namespace pbpf::test {

MmdbValue MmdbValue::string(std::string s) {
    MmdbValue v;
    v.kind = Kind::String;
    v.str = std::move(s);
    return v;
}
MmdbValue MmdbValue::u16(uint16_t x) {
    MmdbValue v;
    v.kind = Kind::Uint16;
    v.uint = x;
    return v;
}
MmdbValue MmdbValue::u32(uint32_t x) {
    MmdbValue v;
    v.kind = Kind::Uint32;
    v.uint = x;
    return v;
}
MmdbValue MmdbValue::u64(uint64_t x) {
    MmdbValue v;
    v.kind = Kind::Uint64;
    v.uint = x;
    return v;
}
MmdbValue MmdbValue::boolean(bool x) {
    MmdbValue v;
    v.kind = Kind::Bool;
    v.uint = x ? 1 : 0;
    return v;
}
MmdbValue MmdbValue::object(std::vector<std::pair<std::string, MmdbValue>> pairs) {
    MmdbValue v;
    v.kind = Kind::Map;
    v.map = std::move(pairs);
    return v;
}
MmdbValue MmdbValue::list(std::vector<MmdbValue> items) {
    MmdbValue v;
    v.kind = Kind::Array;
    v.array = std::move(items);
    return v;
}

namespace {

// Types 1..7 fit the control byte; 8 and up are "extended": type 0 there, and the next
// byte holds type - 7.
enum Type { kString = 2, kUint16 = 5, kUint32 = 6, kMap = 7, kUint64 = 9, kArray = 11, kBool = 14 };

void control(std::string& out, int type, size_t size) {
    uint8_t first = type <= 7 ? static_cast<uint8_t>(type << 5) : 0;
    std::string size_bytes;
    if (size < 29) {
        first |= static_cast<uint8_t>(size);
    } else if (size < 29 + 256) {
        first |= 29;
        size_bytes.push_back(static_cast<char>(size - 29));
    } else if (size < 285 + 65536) {
        first |= 30;
        size -= 285;
        size_bytes = {static_cast<char>(size >> 8), static_cast<char>(size & 0xff)};
    } else {
        first |= 31;
        size -= 65821;
        size_bytes = {static_cast<char>(size >> 16), static_cast<char>((size >> 8) & 0xff),
                      static_cast<char>(size & 0xff)};
    }
    out.push_back(static_cast<char>(first));
    if (type > 7) out.push_back(static_cast<char>(type - 7));
    out += size_bytes;
}

void encode_uint(std::string& out, int type, uint64_t v) {
    std::string bytes;
    for (; v != 0; v >>= 8) bytes.insert(bytes.begin(), static_cast<char>(v & 0xff));
    control(out, type, bytes.size());
    out += bytes;
}

void put_be(std::string& out, uint64_t v, int bytes) {
    for (int i = bytes - 1; i >= 0; --i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

}  // namespace

void encode_mmdb_value(const MmdbValue& v, std::string& out) {
    switch (v.kind) {
        case MmdbValue::Kind::String:
            control(out, kString, v.str.size());
            out += v.str;
            break;
        case MmdbValue::Kind::Uint16:
            encode_uint(out, kUint16, v.uint);
            break;
        case MmdbValue::Kind::Uint32:
            encode_uint(out, kUint32, v.uint);
            break;
        case MmdbValue::Kind::Uint64:
            encode_uint(out, kUint64, v.uint);
            break;
        case MmdbValue::Kind::Bool:
            control(out, kBool, v.uint);
            break;
        case MmdbValue::Kind::Map:
            control(out, kMap, v.map.size());
            for (const auto& [key, value] : v.map) {
                encode_mmdb_value(MmdbValue::string(key), out);
                encode_mmdb_value(value, out);
            }
            break;
        case MmdbValue::Kind::Array:
            control(out, kArray, v.array.size());
            for (const auto& item : v.array) encode_mmdb_value(item, out);
            break;
    }
}

MmdbWriter::MmdbWriter(int ip_version, int record_size)
    : ip_version_(ip_version), record_size_(record_size) {
    if (ip_version != 4 && ip_version != 6) throw std::invalid_argument("ip_version 4 or 6");
    if (record_size != 24 && record_size != 28 && record_size != 32)
        throw std::invalid_argument("record_size 24, 28 or 32");
    nodes_.emplace_back();  // the root
}

MmdbWriter::Record& MmdbWriter::record_at(const std::array<uint8_t, 16>& addr, int len) {
    if (len < 1) throw std::invalid_argument("a prefix of length 0 has no record");
    uint32_t node = 0;
    for (int depth = 0;; ++depth) {
        const int side = (addr[depth / 8] >> (7 - depth % 8)) & 1;
        if (depth == len - 1) return nodes_[node][side];
        Record r = nodes_[node][side];
        if (r.kind != Record::Node) {
            // A data (or empty) record split in two: both halves keep what it had.
            nodes_.push_back({r, r});
            uint32_t child = static_cast<uint32_t>(nodes_.size() - 1);
            nodes_[node][side] = Record{Record::Node, child};
            node = child;
        } else {
            node = r.value;
        }
    }
}

uint32_t MmdbWriter::node_at(const std::array<uint8_t, 16>& addr, int len) {
    if (len == 0) return 0;
    Record& r = record_at(addr, len);
    if (r.kind != Record::Node) {
        Record old = r;
        nodes_.push_back({old, old});
        // record_at's reference may dangle after the push_back: look it up again.
        Record& again = record_at(addr, len);
        again = Record{Record::Node, static_cast<uint32_t>(nodes_.size() - 1)};
        return again.value;
    }
    return r.value;
}

uint32_t MmdbWriter::data_offset(const MmdbValue& data) {
    std::string enc;
    encode_mmdb_value(data, enc);
    auto [it, fresh] = offsets_.emplace(enc, static_cast<uint32_t>(data_.size()));
    if (fresh) data_ += enc;
    return it->second;
}

void MmdbWriter::insert(const std::string& cidr, const MmdbValue& data) {
    size_t slash = cidr.find('/');
    if (slash == std::string::npos) throw std::invalid_argument("no prefix length: " + cidr);
    std::string host = cidr.substr(0, slash);
    int len = std::stoi(cidr.substr(slash + 1));
    std::array<uint8_t, 16> addr{};
    if (host.find(':') != std::string::npos) {
        if (ip_version_ != 6) throw std::invalid_argument("IPv6 network in an IPv4 db");
        if (::inet_pton(AF_INET6, host.c_str(), addr.data()) != 1)
            throw std::invalid_argument("bad IPv6 address: " + cidr);
    } else {
        if (::inet_pton(AF_INET, host.c_str(), addr.data() + (ip_version_ == 6 ? 12 : 0)) != 1)
            throw std::invalid_argument("bad IPv4 address: " + cidr);
        if (ip_version_ == 6) len += 96;
    }
    const uint32_t offset = data_offset(data);
    Record& r = record_at(addr, len);
    r = Record{Record::Data, offset};
}

void MmdbWriter::alias_ipv4() {
    if (ip_version_ != 6) throw std::invalid_argument("aliases are for IPv6 databases");
    const uint32_t ipv4 = node_at({}, 96);
    std::array<uint8_t, 16> mapped{};
    mapped[10] = mapped[11] = 0xff;
    record_at(mapped, 96) = Record{Record::Node, ipv4};
    std::array<uint8_t, 16> six_to_four{0x20, 0x02};
    record_at(six_to_four, 16) = Record{Record::Node, ipv4};
}

std::string MmdbWriter::bytes() const {
    const uint64_t count = nodes_.size();
    auto value = [&](const Record& r) -> uint64_t {
        switch (r.kind) {
            case Record::Node:
                return r.value;
            case Record::Data:
                return count + 16 + r.value;
            case Record::Empty:
                break;
        }
        return count;
    };
    std::string out;
    for (const auto& node : nodes_) {
        const uint64_t left = value(node[0]), right = value(node[1]);
        switch (record_size_) {
            case 24:
                put_be(out, left, 3);
                put_be(out, right, 3);
                break;
            case 28:
                // The middle byte: the left record's top nibble, then the right's.
                put_be(out, left & 0xffffff, 3);
                out.push_back(
                    static_cast<char>(((left >> 24) & 0x0f) << 4 | ((right >> 24) & 0x0f)));
                put_be(out, right & 0xffffff, 3);
                break;
            default:
                put_be(out, left, 4);
                put_be(out, right, 4);
                break;
        }
    }
    out.append(16, '\0');  // the data section separator
    out += data_;
    out += "\xAB\xCD\xEFMaxMind.com";
    using V = MmdbValue;
    encode_mmdb_value(
        V::object({
            {"binary_format_major_version", V::u16(2)},
            {"binary_format_minor_version", V::u16(0)},
            {"build_epoch", V::u64(build_epoch)},
            {"database_type", V::string(database_type)},
            {"description", V::object({{"en", V::string("personabpf test database")}})},
            {"ip_version", V::u16(static_cast<uint16_t>(ip_version_))},
            {"languages", V::list({V::string("en")})},
            {"node_count", V::u32(static_cast<uint32_t>(count))},
            {"record_size", V::u16(static_cast<uint16_t>(record_size_))},
        }),
        out);
    return out;
}

void MmdbWriter::write(const std::string& path) const {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    const std::string b = bytes();
    f.write(b.data(), static_cast<std::streamsize>(b.size()));
    if (!f) throw std::runtime_error("write " + path);
}

}  // namespace pbpf::test
