// A small MaxMind DB (MMDB 2.0) writer for tests, so the geo reader is tested on files the
// test makes: a binary search tree with 24-, 28- or 32-bit records, a data section of
// maps, strings and unsigned integers, and the metadata after "\xAB\xCD\xEFMaxMind.com".
// Spec: MaxMind DB File Format Specification 2.0.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace pbpf::test {

struct MmdbValue {
    enum class Kind { String, Uint16, Uint32, Uint64, Map, Array, Bool };
    Kind kind = Kind::String;
    std::string str;
    uint64_t uint = 0;
    std::vector<std::pair<std::string, MmdbValue>> map;
    std::vector<MmdbValue> array;

    static MmdbValue string(std::string s);
    static MmdbValue u16(uint16_t v);
    static MmdbValue u32(uint32_t v);
    static MmdbValue u64(uint64_t v);
    static MmdbValue boolean(bool v);
    static MmdbValue object(std::vector<std::pair<std::string, MmdbValue>> pairs);
    static MmdbValue list(std::vector<MmdbValue> items);
};

// Appends `v` to `out` in the MMDB data section encoding.
void encode_mmdb_value(const MmdbValue& v, std::string& out);

class MmdbWriter {
  public:
    // ip_version 4 or 6; record_size 24, 28 or 32.
    explicit MmdbWriter(int ip_version, int record_size = 24);

    // Sets the record of a network ("192.0.2.0/24", "2001:db8::/32") to `data`; an IPv4
    // network in an IPv6 database goes under ::/96. A longer network inserted later splits
    // a shorter one (the rest keeps the shorter one's data); a shorter one inserted later
    // replaces whatever was below it. Equal values share one data entry.
    void insert(const std::string& cidr, const MmdbValue& data);
    // Makes ::ffff:0:0/96 and 2002::/16 point at the IPv4 subtree (::/96), as MaxMind's
    // writers do for IPv6 databases.
    void alias_ipv4();

    std::string database_type = "Test-Country";
    uint64_t build_epoch = 1700000000;

    // The whole file.
    std::string bytes() const;
    void write(const std::string& path) const;

    size_t node_count() const { return nodes_.size(); }

  private:
    struct Record {
        enum Kind : uint8_t { Empty, Node, Data } kind = Empty;
        uint32_t value = 0;  // node index or data offset
    };
    // The record a prefix ends in, creating the nodes on its way (splitting data records).
    Record& record_at(const std::array<uint8_t, 16>& addr, int len);
    uint32_t node_at(const std::array<uint8_t, 16>& addr, int len);
    uint32_t data_offset(const MmdbValue& data);

    int ip_version_;
    int record_size_;
    std::vector<std::array<Record, 2>> nodes_;
    std::string data_;
    std::map<std::string, uint32_t> offsets_;  // encoded value -> its offset in data_
};

}  // namespace pbpf::test
