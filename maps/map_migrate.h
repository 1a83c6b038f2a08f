// Pinned-map layout migration. The kernel keeps, with every map, its type, sizes and the
// BTF of its key and value; so a pinned map describes its own layout, and an agent built
// with another layout can tell which maps changed and carry their entries over, member by
// member by name (docs/architecture.md "Map migration").
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "maps/result.h"

struct btf;
struct bpf_map;
struct bpf_object;

namespace pbpf {

// What a map's bytes mean: the map's type, key and value sizes and flags, and its key and
// value types written out from BTF in a canonical text ("{u32 slot@0,u8 dir@32,...}8":
// members with their types and bit offsets, then the size; typedef and struct names left
// out). Two maps with the same layout can share their entries byte for byte.
struct MapLayout {
    uint32_t type = 0;
    uint32_t key_size = 0;
    uint32_t value_size = 0;
    uint32_t max_entries = 0;  // not part of the layout: a resized map keeps its entries
    uint32_t map_flags = 0;
    std::string key;    // canonical type text; empty when the map has no BTF for it
    std::string value;  // likewise

    // A key or value whose BTF one side lacks (the kernel keeps none for maps of maps)
    // compares by size only.
    bool same_layout(const MapLayout& o) const {
        auto same_text = [](const std::string& a, const std::string& b) {
            return a == b || a.empty() || b.empty();
        };
        return type == o.type && key_size == o.key_size && value_size == o.value_size &&
               map_flags == o.map_flags && same_text(key, o.key) && same_text(value, o.value);
    }
    // The map's layout version: 64-bit FNV-1a over everything same_layout() compares,
    // printed as 16 hex digits. Stable across builds that do not change the layout (a map
    // of maps has no BTF in the kernel: its version counts what the kernel keeps).
    std::string version() const;
};

// The canonical text of BTF type `id` (typedefs and modifiers resolved).
std::string btf_type_text(const btf* b, uint32_t id);

// The layout of a map the kernel holds (for example a pinned map's fd).
Result<MapLayout> kernel_map_layout(int map_fd);
// The layout the map of an opened bpf_object will have when it is created (call after its
// max_entries is final).
Result<MapLayout> object_map_layout(const bpf_object* obj, const bpf_map* map);

// Converts buffers of one BTF type into another: struct members are matched by name (a
// member only the old type has is dropped, one only the new has starts at zero), integers
// and enums are widened or narrowed (a value that does not fit is an error), arrays are
// converted element by element (extra new elements start at zero). Anything else must be
// the same type on both sides.
class Converter {
  public:
    // An error names the first member that cannot be converted (`what` prefixes it).
    static Result<Converter> build(const btf* from, uint32_t from_id, const btf* to, uint32_t to_id,
                                   const std::string& what);
    // A byte copy of `size` bytes (same type, or no BTF and the same size).
    static Converter identity(uint32_t size);

    uint32_t from_size() const { return from_size_; }
    uint32_t to_size() const { return to_size_; }
    // `out` (to_size bytes) is overwritten. Fails only on an integer that does not fit.
    Result<void> convert(const uint8_t* in, uint8_t* out) const;
    bool is_identity() const { return identity_; }

    struct Op {
        uint32_t from_off = 0, to_off = 0;
        uint32_t from_size = 0, to_size = 0;  // bytes; equal for a plain copy
        bool is_signed = false;               // integer widening/narrowing
        std::string member;                   // for errors
    };

  private:
    uint32_t from_size_ = 0, to_size_ = 0;
    bool identity_ = false;
    std::vector<Op> ops_;
};

struct CopyStats {
    uint64_t entries = 0;    // copied into the new map
    uint64_t converted = 0;  // of them, converted (layouts differ)
    uint64_t skipped = 0;    // all-zero array elements: the new map starts with zeros
    uint64_t dropped = 0;    // array indexes beyond the new map's size (not all zero)
};

// Copies every entry of the map `from_fd` into the (empty, unused) map `to_fd` of the same
// type, converting keys and values when their layouts differ; then checks that every key
// it copied is in the new map. Per-CPU values are converted CPU by CPU. Maps of maps
// carry their inner maps over by reference (the kernel refuses an inner map that does
// not fit the new outer map). Ring buffers and socket storage cannot be copied: callers
// decide with copyable() first.
//
// MissingKeys copies only the keys the new map lacks (hash-like maps; arrays are left
// alone): after the new programs took over, it adds what the old ones inserted between the
// first copy and the swap (flows that started meanwhile), without overwriting what the
// new programs wrote since.
enum class CopyMode { All, MissingKeys };
Result<CopyStats> copy_map(int from_fd, int to_fd, const std::string& name,
                           CopyMode mode = CopyMode::All);
// Whether copy_map can carry a map of this type.
bool copyable(uint32_t map_type);

}  // namespace pbpf
