// Migration of the pinned maps to this build's layouts, at agent start (an upgrade or a
// downgrade). Every map's layout is compared with its pinned map's (maps/map_migrate.h:
// type, sizes, flags and the BTF of key and value, as the kernel keeps them): an unchanged
// map is reused, a changed one is created anew by the program load and filled from the
// old one, converted member by member, a map new in this build starts empty and a pinned
// map this build no longer has is unpinned. The old programs keep enforcing on the old
// maps until the new programs are swapped into the live links; a failure before that
// changes nothing. Sequence (driven by Loader::adopt):
//
//   plan()            before the load: what to reuse, migrate, create and retire
//   reuse()           before the load: the unchanged maps' fds go to libbpf
//   stage()           after the load: copy and convert, check, pin as NAME__next
//   (Loader swaps the programs into the links; on failure it swaps them back and calls
//    abort(), which unpins the staged maps)
//   commit()          rename NAME__next over NAME, unpin retired maps
//   catch_up()        once interfaces run the new programs too: keys the old programs
//                     added meanwhile (new flows), then the old maps are let go
//
// A start interrupted between stage() and commit() leaves NAME__next pins behind;
// recover_interrupted_migration() rolls them forward when the live links already run
// programs that use them, and removes them otherwise.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "maps/fd.h"
#include "maps/map_migrate.h"
#include "maps/result.h"

struct bpf_map;
struct bpf_object;

namespace pbpf::agent {

class MapMigration {
  public:
    enum class Action { Reuse, Migrate, Create, Retire };
    struct Item {
        std::string name;
        Action action = Action::Reuse;
        bpf_map* map = nullptr;  // null for Retire
        Fd old;                  // the pinned map (Reuse, Migrate, Retire)
        MapLayout from, to;
        CopyStats copied;
    };

    // `obj` is opened and its maps sized (pinned sizes for pinned maps).
    static Result<MapMigration> plan(const std::string& pin_dir, bpf_object* obj);

    // Whether anything differs from the pins (else adoption is plain reuse).
    bool needed() const;
    // "pbpf_conntrack (migrated, 1234 entries), pbpf_binding_drops (new)".
    std::string summary() const;
    const std::vector<Item>& items() const { return items_; }

    Result<void> reuse();
    Result<void> stage();
    void abort();
    Result<void> commit();
    void catch_up();

  private:
    std::string pin(const std::string& name) const { return pin_dir_ + "/" + name; }

    std::string pin_dir_;
    std::vector<Item> items_;
    std::vector<std::string> staged_;  // NAME__next pins made by stage()
    bool staged_done_ = false;         // the copies are made (summary() counts them)
};

// The suffix of staged pins.
// (bpffs reserves dots in names: "NAME.next" would be refused with EPERM.)
inline constexpr const char* kStagedSuffix = "__next";

// Finishes or undoes a migration that a crash interrupted (NAME__next pins present):
// forward when a program of the pinned links `link_pins` uses one of the staged maps,
// back otherwise. Logs what it did.
Result<void> recover_interrupted_migration(const std::string& pin_dir,
                                           const std::vector<std::string>& link_pins);

}  // namespace pbpf::agent
