// The undo journal of a migration import: encoding, durable write, read and removal.
#include "agent/import_journal.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include <nlohmann/json.hpp>

#include "maps/abi/limits.h"

namespace pbpf::agent {
namespace {

using nlohmann::json;

constexpr std::string_view kMagic = "personabpf-import-journal 1\n";
constexpr std::string_view kEnd = "end\n";

json binding_json(const BindingRecord& b) {
    return {{"cgroup_id", b.cgroup_id}, {"cgroup_path", b.cgroup_path}, {"persona", b.persona},
            {"bound_at", b.bound_at},   {"origin", b.origin},           {"rule_id", b.rule_id}};
}

BindingRecord binding_from(const json& j) {
    BindingRecord b;
    b.cgroup_id = j.at("cgroup_id").get<uint64_t>();
    b.cgroup_path = j.at("cgroup_path").get<std::string>();
    b.persona = j.at("persona").get<std::string>();
    b.bound_at = j.at("bound_at").get<int64_t>();
    b.origin = j.at("origin").get<std::string>();
    b.rule_id = j.at("rule_id").get<int64_t>();
    return b;
}

json if_binding_json(const IfBindingRecord& b) {
    return {{"netns", b.netns},     {"ifname", b.ifname},
            {"ifindex", b.ifindex}, {"netns_cookie", b.netns_cookie},
            {"persona", b.persona}, {"bound_at", b.bound_at},
            {"origin", b.origin},   {"rule_id", b.rule_id}};
}

IfBindingRecord if_binding_from(const json& j) {
    IfBindingRecord b;
    b.netns = j.at("netns").get<std::string>();
    b.ifname = j.at("ifname").get<std::string>();
    b.ifindex = j.at("ifindex").get<uint32_t>();
    b.netns_cookie = j.at("netns_cookie").get<uint64_t>();
    b.persona = j.at("persona").get<std::string>();
    b.bound_at = j.at("bound_at").get<int64_t>();
    b.origin = j.at("origin").get<std::string>();
    b.rule_id = j.at("rule_id").get<int64_t>();
    return b;
}

template <typename T>
void put(std::string& out, const T& v) {
    out.append(reinterpret_cast<const char*>(&v), sizeof v);
}

// Reads from a byte range, failing (ok = false) instead of reading past its end.
struct Reader {
    std::string_view in;
    bool ok = true;
    template <typename T>
    T get() {
        T v{};
        if (in.size() < sizeof v) {
            ok = false;
            return v;
        }
        std::memcpy(&v, in.data(), sizeof v);
        in.remove_prefix(sizeof v);
        return v;
    }
    std::string_view take(size_t n) {
        if (in.size() < n) {
            ok = false;
            return {};
        }
        std::string_view v = in.substr(0, n);
        in.remove_prefix(n);
        return v;
    }
};

Result<void> fsync_path(const std::string& path, int flags) {
    const int fd = ::open(path.c_str(), flags | O_CLOEXEC);
    if (fd < 0) return sys_error("open " + path);
    const int rc = ::fsync(fd);
    const int err = errno;
    ::close(fd);
    if (rc != 0) return sys_error("fsync " + path, err);
    return {};
}

std::string dir_of(const std::string& path) {
    const auto parent = std::filesystem::path(path).parent_path();
    return parent.empty() ? "." : parent.string();
}

}  // namespace

std::string ImportJournal::describe() const {
    const std::string where =
        kind == "interface" ? "interface " + ifname + (netns.empty() ? "" : " in netns " + netns)
                            : "cgroup " + cgroup;
    return "persona " + persona + " v" + std::to_string(version) + " into " + where;
}

std::string encode_import_journal(const ImportJournal& j) {
    json h = {{"persona", j.persona},
              {"version", j.version},
              {"persona_created", j.persona_created},
              {"version_added", j.version_added},
              {"kind", j.kind},
              {"rebinds", j.rebinds},
              {"from", j.from},
              {"started_at", j.started_at},
              {"map_schema", PBPF_MAP_SCHEMA_VERSION},
              {"key_size", sizeof(pbpf_ct_key)},
              {"value_size", sizeof(pbpf_ct_value)}};
    if (j.kind == "interface") {
        h["ifname"] = j.ifname;
        h["netns"] = j.netns;
        h["netns_cookie"] = j.netns_cookie;
        h["ifindex"] = j.ifindex;
        h["previous"] = j.previous_if ? if_binding_json(*j.previous_if) : json(nullptr);
    } else {
        h["cgroup"] = j.cgroup;
        h["cgroup_id"] = j.cgroup_id;
        h["previous"] = j.previous ? binding_json(*j.previous) : json(nullptr);
    }
    const std::string header = h.dump();
    std::string out;
    size_t befores = 0;
    for (const auto& f : j.flows) befores += f.before ? 1 : 0;
    out.reserve(kMagic.size() + 4 + header.size() + 8 +
                j.flows.size() * (sizeof(pbpf_ct_key) + 8 + 1) + befores * sizeof(pbpf_ct_value) +
                kEnd.size());
    out.append(kMagic);
    put(out, static_cast<uint32_t>(header.size()));
    out.append(header);
    put(out, static_cast<uint64_t>(j.flows.size()));
    for (const auto& f : j.flows) {
        put(out, f.key);
        put(out, f.created_ns);
        put(out, static_cast<uint8_t>(f.before ? 1 : 0));
        if (f.before) put(out, *f.before);
    }
    out.append(kEnd);
    return out;
}

Result<ImportJournal> decode_import_journal(std::string_view bytes) {
    auto bad = [](const std::string& why) { return Error{0, "import journal: " + why}; };
    if (bytes.substr(0, kMagic.size()) != kMagic)
        return bad("not a personabpf import journal (its first line is not '" +
                   std::string(kMagic.substr(0, kMagic.size() - 1)) + "')");
    Reader r{bytes.substr(kMagic.size())};
    const auto header_size = r.get<uint32_t>();
    const std::string_view header = r.take(header_size);
    if (!r.ok) return bad("truncated in its header");
    ImportJournal j;
    size_t key_size = 0, value_size = 0;
    uint32_t schema = 0;
    try {
        const json h = json::parse(header);
        j.persona = h.at("persona").get<std::string>();
        j.version = h.at("version").get<int64_t>();
        j.persona_created = h.at("persona_created").get<bool>();
        j.version_added = h.at("version_added").get<bool>();
        j.kind = h.at("kind").get<std::string>();
        j.rebinds = h.at("rebinds").get<bool>();
        j.from = h.at("from").get<std::string>();
        j.started_at = h.at("started_at").get<int64_t>();
        schema = h.at("map_schema").get<uint32_t>();
        key_size = h.at("key_size").get<size_t>();
        value_size = h.at("value_size").get<size_t>();
        if (j.kind == "interface") {
            j.ifname = h.at("ifname").get<std::string>();
            j.netns = h.at("netns").get<std::string>();
            j.netns_cookie = h.at("netns_cookie").get<uint64_t>();
            j.ifindex = h.at("ifindex").get<uint32_t>();
            if (!h.at("previous").is_null()) j.previous_if = if_binding_from(h.at("previous"));
        } else if (j.kind == "cgroup") {
            j.cgroup = h.at("cgroup").get<std::string>();
            j.cgroup_id = h.at("cgroup_id").get<uint64_t>();
            if (!h.at("previous").is_null()) j.previous = binding_from(h.at("previous"));
        } else {
            return bad("unknown binding kind '" + j.kind + "'");
        }
    } catch (const json::exception& e) {
        return bad(std::string("malformed header: ") + e.what());
    }
    const auto count = r.get<uint64_t>();
    if (!r.ok) return bad("truncated before its flows");
    j.flows_readable = schema == PBPF_MAP_SCHEMA_VERSION && key_size == sizeof(pbpf_ct_key) &&
                       value_size == sizeof(pbpf_ct_value);
    // Walked also when unreadable: the end marker proves the file complete.
    for (uint64_t i = 0; i < count && r.ok; ++i) {
        ImportJournal::Flow f;
        const std::string_view key = r.take(key_size);
        f.created_ns = r.get<uint64_t>();
        const auto has_before = r.get<uint8_t>();
        if (has_before > 1) return bad("flow " + std::to_string(i) + ": a bad entry marker");
        const std::string_view before = has_before ? r.take(value_size) : std::string_view();
        if (!r.ok) break;
        if (!j.flows_readable) continue;
        std::memcpy(&f.key, key.data(), sizeof f.key);
        if (has_before) {
            f.before.emplace();
            std::memcpy(&*f.before, before.data(), sizeof *f.before);
        }
        j.flows.push_back(f);
    }
    if (!r.ok) return bad("truncated in its flows (" + std::to_string(count) + " announced)");
    if (r.in != kEnd) return bad("no end marker after its flows");
    return j;
}

Result<void> write_import_journal(const std::string& path, const ImportJournal& j) {
    const std::string bytes = encode_import_journal(j);
    const std::string tmp = path + ".tmp";
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return sys_error("create " + tmp);
    size_t done = 0;
    while (done < bytes.size()) {
        const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            const int err = n < 0 ? errno : EIO;
            ::close(fd);
            ::unlink(tmp.c_str());
            return sys_error("write " + tmp, err);
        }
        done += static_cast<size_t>(n);
    }
    if (::fsync(fd) != 0) {
        const int err = errno;
        ::close(fd);
        ::unlink(tmp.c_str());
        return sys_error("fsync " + tmp, err);
    }
    ::close(fd);
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
        const int err = errno;
        ::unlink(tmp.c_str());
        return sys_error("rename " + tmp + " to " + path, err);
    }
    return fsync_path(dir_of(path), O_RDONLY | O_DIRECTORY);
}

Result<std::optional<ImportJournal>> read_import_journal(const std::string& path) {
    std::error_code ec;
    std::filesystem::remove(path + ".tmp", ec);  // written before any change: nothing to undo
    if (!std::filesystem::exists(path, ec)) {
        if (ec) return Error{0, "stat " + path + ": " + ec.message()};
        return std::optional<ImportJournal>();
    }
    std::ifstream in(path, std::ios::binary);
    if (!in) return sys_error("open " + path);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (in.bad()) return sys_error("read " + path);
    auto j = decode_import_journal(bytes);
    if (!j) return Error{0, path + ": " + j.error().message};
    return std::optional<ImportJournal>(std::move(*j));
}

Result<void> remove_import_journal(const std::string& path) {
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) return sys_error("remove " + path);
    return fsync_path(dir_of(path), O_RDONLY | O_DIRECTORY);
}

}  // namespace pbpf::agent
