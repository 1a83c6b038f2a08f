// Migration of the pinned maps to this build's layouts (see map_migration.h).
#include "agent/map_migration.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <set>

#include <spdlog/spdlog.h>

#include "agent/failpoint.h"

namespace fs = std::filesystem;

namespace pbpf::agent {
namespace {

bool pinned(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0;
}

Result<Fd> open_pinned(const std::string& path) {
    int fd = bpf_obj_get(path.c_str());
    if (fd < 0) return sys_error("open pinned " + path);
    return Fd(fd);
}

// The ids of the maps the program behind a pinned link uses.
Result<std::set<uint32_t>> maps_of_link(const std::string& link_pin) {
    auto link = open_pinned(link_pin);
    if (!link) return link.error();
    bpf_link_info li{};
    __u32 len = sizeof li;
    if (bpf_obj_get_info_by_fd(link->get(), &li, &len) != 0)
        return sys_error("link info " + link_pin);
    Fd prog(bpf_prog_get_fd_by_id(li.prog_id));
    if (!prog.valid()) return sys_error("open the program of " + link_pin);
    bpf_prog_info pi{};
    len = sizeof pi;
    if (bpf_obj_get_info_by_fd(prog.get(), &pi, &len) != 0)
        return sys_error("program info of " + link_pin);
    std::vector<uint32_t> ids(pi.nr_map_ids);
    bpf_prog_info pi2{};
    pi2.nr_map_ids = static_cast<__u32>(ids.size());
    pi2.map_ids = reinterpret_cast<__u64>(ids.data());
    len = sizeof pi2;
    if (bpf_obj_get_info_by_fd(prog.get(), &pi2, &len) != 0)
        return sys_error("map ids of the program of " + link_pin);
    ids.resize(std::min<size_t>(ids.size(), pi2.nr_map_ids));
    return std::set<uint32_t>(ids.begin(), ids.end());
}

Result<uint32_t> map_id(int fd, const std::string& what) {
    bpf_map_info info{};
    __u32 len = sizeof info;
    if (bpf_obj_get_info_by_fd(fd, &info, &len) != 0) return sys_error("map info " + what);
    return info.id;
}

bool is_map(const std::string& path) {
    auto fd = open_pinned(path);
    if (!fd) return false;
    bpf_map_info info{};
    __u32 len = sizeof info;
    return bpf_obj_get_info_by_fd(fd->get(), &info, &len) == 0;
}

const char* action_name(MapMigration::Action a) {
    switch (a) {
        case MapMigration::Action::Reuse:
            return "reused";
        case MapMigration::Action::Migrate:
            return "migrated";
        case MapMigration::Action::Create:
            return "new";
        case MapMigration::Action::Retire:
            return "retired";
    }
    return "?";
}

}  // namespace

Result<MapMigration> MapMigration::plan(const std::string& pin_dir, bpf_object* obj) {
    MapMigration m;
    m.pin_dir_ = pin_dir;
    std::set<std::string> ours;
    bpf_map* map;
    bpf_object__for_each_map(map, obj) {
        if (bpf_map__is_internal(map)) continue;
        Item it;
        it.name = bpf_map__name(map);
        it.map = map;
        ours.insert(it.name);
        auto want = object_map_layout(obj, map);
        if (!want) return want.error();
        it.to = *want;
        const std::string p = m.pin(it.name);
        if (!pinned(p)) {
            it.action = Action::Create;
            m.items_.push_back(std::move(it));
            continue;
        }
        auto fd = open_pinned(p);
        if (!fd) return fd.error();
        auto have = kernel_map_layout(fd->get());
        if (!have) return Error{have.error().err, p + ": " + have.error().message};
        it.from = *have;
        it.old = std::move(*fd);
        const bool same = it.from.same_layout(it.to) && it.from.max_entries == it.to.max_entries;
        it.action = same ? Action::Reuse : Action::Migrate;
        if (!same)
            spdlog::debug(
                "map {}: pinned type {} key {} value {} flags {:#x} max {} [{} | {}], "
                "this build's type {} key {} value {} flags {:#x} max {} [{} | {}]",
                it.name, it.from.type, it.from.key_size, it.from.value_size, it.from.map_flags,
                it.from.max_entries, it.from.key, it.from.value, it.to.type, it.to.key_size,
                it.to.value_size, it.to.map_flags, it.to.max_entries, it.to.key, it.to.value);
        if (it.action == Action::Migrate && it.from.type != it.to.type)
            return Error{EPROTO, "pinned map " + p + " changed its type in this build (" +
                                     std::to_string(it.from.type) + " -> " +
                                     std::to_string(it.to.type) +
                                     "); it cannot be migrated: run personabpfd --uninstall "
                                     "with this --bpffs-root (drops enforcement)"};
        m.items_.push_back(std::move(it));
    }
    // Pinned maps this build does not have (links, staged pins and subdirectories aside).
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(pin_dir, ec)) {
        const std::string name = e.path().filename().string();
        if (e.is_directory() || name.rfind("link_", 0) == 0 || ours.count(name) ||
            name.ends_with(kStagedSuffix) || !is_map(e.path().string()))
            continue;
        Item it;
        it.name = name;
        it.action = Action::Retire;
        m.items_.push_back(std::move(it));
    }
    if (ec) return Error{ec.value(), "list pin dir " + pin_dir};
    return m;
}

bool MapMigration::needed() const {
    return std::any_of(items_.begin(), items_.end(),
                       [](const Item& i) { return i.action != Action::Reuse; });
}

std::string MapMigration::summary() const {
    std::string out;
    for (const auto& i : items_) {
        if (i.action == Action::Reuse) continue;
        if (!out.empty()) out += ", ";
        out += i.name + " (" + action_name(i.action);
        if (i.action == Action::Migrate) {
            out += " " + i.from.version() + " -> " + i.to.version();
            if (!copyable(i.from.type))
                out += ", starts empty";
            else if (staged_done_)
                out += ", " + std::to_string(i.copied.entries) + " entries";
        }
        out += ")";
    }
    return out;
}

Result<void> MapMigration::reuse() {
    for (auto& i : items_) {
        if (i.action != Action::Reuse) continue;
        if (int err = bpf_map__reuse_fd(i.map, i.old.get()); err != 0)
            return sys_error("reuse pinned map " + pin(i.name), err);
    }
    return {};
}

Result<void> MapMigration::stage() {
    for (auto& i : items_) {
        if (i.action != Action::Migrate || !copyable(i.from.type)) continue;
        auto st = copy_map(i.old.get(), bpf_map__fd(i.map), i.name);
        if (!st)
            return Error{st.error().err,
                         "migrate pinned map " + pin(i.name) + ": " + st.error().message};
        i.copied = *st;
        if (st->dropped)
            spdlog::warn("migrate {}: {} entries did not fit the new map", i.name, st->dropped);
    }
    // Tests: a conversion that fails after some maps were filled.
    if (failpoint_armed("migrate-fail"))
        return Error{EIO, "migrate: failing on purpose (PERSONABPF_FAILPOINT=migrate-fail)"};
    for (auto& i : items_) {
        if (i.action != Action::Migrate && i.action != Action::Create) continue;
        const std::string staged = pin(i.name) + kStagedSuffix;
        ::unlink(staged.c_str());  // a leftover of an earlier attempt
        if (int err = bpf_map__pin(i.map, staged.c_str()); err != 0) {
            abort();
            return sys_error("pin " + staged, err);
        }
        staged_.push_back(staged);
    }
    staged_done_ = true;
    failpoint("migrate-staged");
    return {};
}

void MapMigration::abort() {
    for (const auto& s : staged_) ::unlink(s.c_str());
    staged_.clear();
}

Result<void> MapMigration::commit() {
    // The new programs run: the staged maps are the live ones from here on.
    for (const auto& s : staged_) {
        const std::string final_pin = s.substr(0, s.size() - std::strlen(kStagedSuffix));
        if (::rename(s.c_str(), final_pin.c_str()) != 0)
            return sys_error("rename " + s + " to " + final_pin + " (the next start finishes it)");
    }
    staged_.clear();
    for (auto& i : items_) {
        if (i.action != Action::Retire) continue;
        if (::unlink(pin(i.name).c_str()) != 0)
            spdlog::warn("unpin retired map {}: {}", pin(i.name), std::strerror(errno));
    }
    return {};
}

void MapMigration::catch_up() {
    for (auto& i : items_) {
        if (i.action != Action::Migrate || !copyable(i.from.type) || !i.old.valid()) continue;
        auto st = copy_map(i.old.get(), bpf_map__fd(i.map), i.name, CopyMode::MissingKeys);
        if (!st)
            spdlog::warn("migrate {}: catching up with the old map: {}", i.name, st.error().what());
        else if (st->entries)
            spdlog::info("migrate {}: {} entries the old programs added during the swap", i.name,
                         st->entries);
        i.old.reset();  // the old map goes with its last reference
    }
}

Result<void> recover_interrupted_migration(const std::string& pin_dir,
                                           const std::vector<std::string>& link_pins) {
    std::vector<std::string> staged;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(pin_dir, ec)) {
        const std::string name = e.path().filename().string();
        if (!e.is_directory() && name.size() > std::strlen(kStagedSuffix) &&
            name.ends_with(kStagedSuffix))
            staged.push_back(e.path().string());
    }
    if (ec) return Error{ec.value(), "list pin dir " + pin_dir};
    if (staged.empty()) return {};
    std::set<uint32_t> live;
    for (const auto& l : link_pins) {
        if (!pinned(l)) continue;
        auto ids = maps_of_link(l);
        if (!ids) return ids.error();
        live.insert(ids->begin(), ids->end());
    }
    bool forward = false;
    for (const auto& s : staged) {
        auto fd = open_pinned(s);
        if (!fd) return fd.error();
        auto id = map_id(fd->get(), s);
        if (!id) return id.error();
        if (live.count(*id)) forward = true;
    }
    for (const auto& s : staged) {
        const std::string final_pin = s.substr(0, s.size() - std::strlen(kStagedSuffix));
        if (forward) {
            if (::rename(s.c_str(), final_pin.c_str()) != 0)
                return sys_error("finish the interrupted migration: rename " + s);
        } else if (::unlink(s.c_str()) != 0) {
            return sys_error("undo the interrupted migration: unpin " + s);
        }
    }
    spdlog::warn("an earlier map migration under {} was interrupted; {} it ({} maps)", pin_dir,
                 forward ? "finished" : "undid", staged.size());
    return {};
}

}  // namespace pbpf::agent
