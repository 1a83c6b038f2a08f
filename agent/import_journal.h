// The undo journal of a migration import (<state_dir>/import.journal): what the import
// is about to change on this host, written in full before its first change and removed
// once the import succeeded or was undone. An agent that finds one at start was stopped
// in the middle of an import (kill -9, a crash, a power cut) and undoes it
// (Migration::recover), so an interrupted import leaves the host as it was.
//
// The file: a magic line, a JSON header (persona, binding, what existed before) and the
// conntrack keys as the maps hold them, each with the created_ns the import writes and the
// entry that was there before, if one was. Keys and entries are raw map bytes: they are
// read back only when the map schema and the struct sizes are the ones they were written
// with.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/store.h"
#include "maps/abi/conntrack.h"
#include "maps/result.h"

namespace pbpf::agent {

struct ImportJournal {
    std::string persona;
    int64_t version = 0;
    // The persona did not exist here and the import creates it (and the version, when
    // this repository did not have it): undone by removing them.
    bool persona_created = false;
    bool version_added = false;

    std::string kind = "cgroup";  // or "interface"
    // The import binds the workload (false: it was bound to the persona already).
    bool rebinds = false;
    // kind "cgroup"
    std::string cgroup;  // relative to the cgroup2 mount
    uint64_t cgroup_id = 0;
    std::optional<BindingRecord> previous;
    // kind "interface"
    std::string ifname, netns;
    uint64_t netns_cookie = 0;
    uint32_t ifindex = 0;
    std::optional<IfBindingRecord> previous_if;

    // The conntrack entries the import writes. An entry is inserted where none is (and
    // then recognised as the import's by its created_ns, which the kernel never changes);
    // one that is there already (a retried import, or the workload's own traffic) is read
    // into `before` and the journal written again before it is overwritten. Undo: `before`
    // put back, or the entry deleted if it is still the import's.
    struct Flow {
        pbpf_ct_key key{};
        uint64_t created_ns = 0;  // of the entry the import writes
        std::optional<pbpf_ct_value> before;
    };
    std::vector<Flow> flows;
    // False when read back from a journal of another map layout: the keys cannot be
    // interpreted, and undo leaves the flows to expire.
    bool flows_readable = true;

    std::string from;        // the peer or "" (the API), for the log
    int64_t started_at = 0;  // unix seconds

    // "persona web v3 into cgroup /x" for logs.
    std::string describe() const;
};

// The file's bytes, and back. decode refuses a truncated or foreign file with a message
// that says what is wrong.
std::string encode_import_journal(const ImportJournal& j);
Result<ImportJournal> decode_import_journal(std::string_view bytes);

// Writes `path` durably (a temporary file, fsync, rename, fsync of the directory), so
// that the journal exists complete or not at all. An error after the rename (the
// directory's fsync) leaves the new, complete journal in place.
Result<void> write_import_journal(const std::string& path, const ImportJournal& j);
// The journal at `path`; nullopt when there is none. A leftover temporary file (a crash
// while the journal was written, before any change) is removed.
Result<std::optional<ImportJournal>> read_import_journal(const std::string& path);
// Removes the journal durably: the import's commit point.
Result<void> remove_import_journal(const std::string& path);

}  // namespace pbpf::agent
