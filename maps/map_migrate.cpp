// Pinned-map layout migration (see map_migrate.h).
#include "maps/map_migrate.h"

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>

#include <algorithm>
#include <cstring>
#include <memory>

#include "maps/fd.h"

namespace pbpf {
namespace {

struct BtfFree {
    void operator()(btf* b) const { btf__free(b); }
};
using BtfPtr = std::unique_ptr<btf, BtfFree>;

uint32_t resolved(const btf* b, uint32_t id) {
    int r = btf__resolve_type(b, id);
    return r < 0 ? id : static_cast<uint32_t>(r);
}

bool is_int_like(const btf_type* t) { return btf_is_int(t) || btf_is_enum(t) || btf_is_enum64(t); }

bool is_signed(const btf_type* t) {
    if (btf_is_int(t)) return (btf_int_encoding(t) & BTF_INT_SIGNED) != 0;
    return btf_kflag(t);  // enums: kflag marks a signed enum
}

void append_text(const btf* b, uint32_t id, std::string& out, int depth) {
    if (depth > 32) {
        out += "...";
        return;
    }
    id = resolved(b, id);
    if (id == 0) {
        out += "void";
        return;
    }
    const btf_type* t = btf__type_by_id(b, id);
    if (t == nullptr) {
        out += "?";
        return;
    }
    switch (btf_kind(t)) {
        case BTF_KIND_INT: {
            const uint32_t enc = btf_int_encoding(t);
            out += (enc & BTF_INT_BOOL) ? "bool" : (enc & BTF_INT_SIGNED) ? "s" : "u";
            if (!(enc & BTF_INT_BOOL)) out += std::to_string(btf_int_bits(t));
            if (btf_int_offset(t) != 0) out += "+" + std::to_string(btf_int_offset(t));
            return;
        }
        case BTF_KIND_ENUM:
        case BTF_KIND_ENUM64:
            out += (btf_kflag(t) ? "se" : "ue") + std::to_string(t->size * 8);
            return;
        case BTF_KIND_FLOAT:
            out += "f" + std::to_string(t->size * 8);
            return;
        case BTF_KIND_PTR:
            out += "ptr";
            return;
        case BTF_KIND_ARRAY: {
            const struct btf_array* a = btf_array(t);
            append_text(b, a->type, out, depth + 1);
            out += "[" + std::to_string(a->nelems) + "]";
            return;
        }
        case BTF_KIND_STRUCT:
        case BTF_KIND_UNION: {
            out += btf_is_union(t) ? "union{" : "{";
            const btf_member* m = btf_members(t);
            for (uint32_t i = 0; i < btf_vlen(t); ++i, ++m) {
                if (i) out += ",";
                const char* name = btf__name_by_offset(b, m->name_off);
                out += name ? name : "";
                out += ":";
                append_text(b, m->type, out, depth + 1);
                out += "@" + std::to_string(btf_member_bit_offset(t, i));
                if (uint32_t bits = btf_member_bitfield_size(t, i))
                    out += ":" + std::to_string(bits);
            }
            out += "}" + std::to_string(t->size);
            return;
        }
        default:
            out += "kind" + std::to_string(btf_kind(t)) + "/" + std::to_string(t->size);
            return;
    }
}

int64_t type_size(const btf* b, uint32_t id) { return btf__resolve_size(b, id); }

class PlanBuilder {
  public:
    PlanBuilder(const btf* from, const btf* to) : from_(from), to_(to) {}

    Result<void> add(uint32_t fid, uint32_t foff, uint32_t tid, uint32_t toff,
                     const std::string& path) {
        fid = resolved(from_, fid);
        tid = resolved(to_, tid);
        const btf_type* ft = btf__type_by_id(from_, fid);
        const btf_type* tt = btf__type_by_id(to_, tid);
        if (ft == nullptr || tt == nullptr) return Error{EINVAL, path + ": broken BTF"};
        const std::string ftext = btf_type_text(from_, fid);
        const std::string ttext = btf_type_text(to_, tid);
        if (ftext == ttext) {
            const int64_t size = type_size(to_, tid);
            if (size < 0) return Error{EINVAL, path + ": type without a size (" + ttext + ")"};
            if (size > 0) copy(foff, toff, static_cast<uint32_t>(size), path);
            return {};
        }
        if (is_int_like(ft) && is_int_like(tt)) {
            if ((btf_is_int(ft) && (btf_int_offset(ft) || btf_int_bits(ft) != ft->size * 8)) ||
                (btf_is_int(tt) && (btf_int_offset(tt) || btf_int_bits(tt) != tt->size * 8)))
                return Error{EINVAL, path + ": cannot convert " + ftext + " to " + ttext};
            ops_.push_back({foff, toff, ft->size, tt->size, is_signed(ft), path});
            return {};
        }
        if (btf_is_struct(ft) && btf_is_struct(tt)) return add_struct(ft, foff, tt, toff, path);
        if (btf_is_array(ft) && btf_is_array(tt)) {
            const struct btf_array* fa = btf_array(ft);
            const struct btf_array* ta = btf_array(tt);
            const int64_t fes = type_size(from_, fa->type), tes = type_size(to_, ta->type);
            if (fes <= 0 || tes <= 0) return Error{EINVAL, path + ": array of unsized elements"};
            const uint32_t n = std::min(fa->nelems, ta->nelems);
            for (uint32_t i = 0; i < n; ++i) {
                auto r = add(fa->type, foff + i * static_cast<uint32_t>(fes), ta->type,
                             toff + i * static_cast<uint32_t>(tes),
                             path + "[" + std::to_string(i) + "]");
                if (!r) return r;
            }
            return {};
        }
        return Error{EINVAL, path + ": cannot convert " + ftext + " to " + ttext};
    }

    // The plan, neighbouring plain copies merged into one.
    std::vector<Converter::Op> take() {
        std::vector<Converter::Op> merged;
        for (auto& op : ops_) {
            if (!merged.empty()) {
                auto& last = merged.back();
                if (last.from_size == last.to_size && op.from_size == op.to_size &&
                    last.from_off + last.from_size == op.from_off &&
                    last.to_off + last.to_size == op.to_off) {
                    last.from_size += op.from_size;
                    last.to_size += op.to_size;
                    continue;
                }
            }
            merged.push_back(std::move(op));
        }
        return merged;
    }

  private:
    Result<void> add_struct(const btf_type* ft, uint32_t foff, const btf_type* tt, uint32_t toff,
                            const std::string& path) {
        const btf_member* tm = btf_members(tt);
        uint32_t anon_seen = 0;
        for (uint32_t i = 0; i < btf_vlen(tt); ++i, ++tm) {
            const char* tname = btf__name_by_offset(to_, tm->name_off);
            const std::string name = tname ? tname : "";
            // The matching member of the old type: by name, or the same-numbered anonymous one.
            int match = -1;
            uint32_t anon = 0;
            const btf_member* fm = btf_members(ft);
            for (uint32_t j = 0; j < btf_vlen(ft); ++j, ++fm) {
                const char* fname = btf__name_by_offset(from_, fm->name_off);
                const std::string f = fname ? fname : "";
                if (name.empty() ? (f.empty() && anon++ == anon_seen) : f == name) {
                    match = static_cast<int>(j);
                    break;
                }
            }
            if (name.empty()) ++anon_seen;
            if (match < 0) continue;  // new member: starts at zero
            const std::string mpath = path + "." + (name.empty() ? "(anonymous)" : name);
            if (btf_member_bitfield_size(tt, i) || btf_member_bitfield_size(ft, match)) {
                if (btf_member_bitfield_size(tt, i) != btf_member_bitfield_size(ft, match) ||
                    btf_member_bit_offset(tt, i) != btf_member_bit_offset(ft, match))
                    return Error{EINVAL, mpath + ": a bit field moved or changed size"};
                // Same bits at the same place: copy the bytes that hold them.
                const uint32_t first = btf_member_bit_offset(tt, i) / 8;
                const uint32_t last =
                    (btf_member_bit_offset(tt, i) + btf_member_bitfield_size(tt, i) + 7) / 8;
                copy(foff + first, toff + first, last - first, mpath);
                continue;
            }
            const btf_member* fmm = btf_members(ft) + match;
            auto r = add(fmm->type, foff + btf_member_bit_offset(ft, match) / 8, tm->type,
                         toff + btf_member_bit_offset(tt, i) / 8, mpath);
            if (!r) return r;
        }
        return {};
    }

    void copy(uint32_t foff, uint32_t toff, uint32_t size, const std::string& path) {
        ops_.push_back({foff, toff, size, size, false, path});
    }

    const btf* from_;
    const btf* to_;
    std::vector<Converter::Op> ops_;
};

uint64_t read_uint(const uint8_t* p, uint32_t size) {
    uint64_t v = 0;
    std::memcpy(&v, p, std::min<uint32_t>(size, 8));  // little-endian host (BPF's order)
    return v;
}

bool is_percpu(uint32_t type) {
    return type == BPF_MAP_TYPE_PERCPU_ARRAY || type == BPF_MAP_TYPE_PERCPU_HASH ||
           type == BPF_MAP_TYPE_LRU_PERCPU_HASH;
}
bool is_array(uint32_t type) {
    return type == BPF_MAP_TYPE_ARRAY || type == BPF_MAP_TYPE_PERCPU_ARRAY;
}
bool is_map_of_maps(uint32_t type) {
    return type == BPF_MAP_TYPE_ARRAY_OF_MAPS || type == BPF_MAP_TYPE_HASH_OF_MAPS;
}
bool is_lru(uint32_t type) {
    return type == BPF_MAP_TYPE_LRU_HASH || type == BPF_MAP_TYPE_LRU_PERCPU_HASH;
}

Result<bpf_map_info> map_info(int fd, const std::string& what) {
    bpf_map_info info{};
    __u32 len = sizeof info;
    if (bpf_obj_get_info_by_fd(fd, &info, &len) != 0) return sys_error("map info of " + what);
    return info;
}

// The converter for a key or value: from BTF when both maps have it, else a byte copy of
// equal sizes.
Result<Converter> converter_for(const btf* fb, uint32_t fid, uint32_t fsize, const btf* tb,
                                uint32_t tid, uint32_t tsize, const std::string& what) {
    if (fb && tb && fid && tid) {
        auto c = Converter::build(fb, fid, tb, tid, what);
        if (!c) return c.error();
        if (c->from_size() != fsize || c->to_size() != tsize)
            return Error{EINVAL, what + ": BTF size does not match the map's"};
        return c;
    }
    if (fsize != tsize)
        return Error{EINVAL, what + ": sizes differ (" + std::to_string(fsize) + " -> " +
                                 std::to_string(tsize) + ") and the map has no BTF to convert by"};
    return Converter::identity(fsize);
}

}  // namespace

std::string btf_type_text(const btf* b, uint32_t id) {
    std::string out;
    append_text(b, id, out, 0);
    return out;
}

std::string MapLayout::version() const {
    uint64_t h = 1469598103934665603ull;
    auto mix = [&](const void* p, size_t n) {
        const auto* c = static_cast<const unsigned char*>(p);
        for (size_t i = 0; i < n; ++i) h = (h ^ c[i]) * 1099511628211ull;
    };
    for (uint32_t v : {type, key_size, value_size, map_flags}) mix(&v, sizeof v);
    mix(key.data(), key.size());
    mix("|", 1);
    mix(value.data(), value.size());
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
    return buf;
}

Result<MapLayout> kernel_map_layout(int map_fd) {
    auto info = map_info(map_fd, "fd " + std::to_string(map_fd));
    if (!info) return info.error();
    MapLayout l;
    l.type = info->type;
    l.key_size = info->key_size;
    l.value_size = info->value_size;
    l.max_entries = info->max_entries;
    l.map_flags = info->map_flags;
    if (info->btf_id != 0) {
        BtfPtr b(btf__load_from_kernel_by_id(info->btf_id));
        if (!b)
            return sys_error("load BTF " + std::to_string(info->btf_id) + " of map " + info->name);
        if (info->btf_key_type_id) l.key = btf_type_text(b.get(), info->btf_key_type_id);
        if (info->btf_value_type_id) l.value = btf_type_text(b.get(), info->btf_value_type_id);
    }
    return l;
}

Result<MapLayout> object_map_layout(const bpf_object* obj, const bpf_map* map) {
    MapLayout l;
    l.type = bpf_map__type(map);
    l.key_size = bpf_map__key_size(map);
    l.value_size = bpf_map__value_size(map);
    l.max_entries = bpf_map__max_entries(map);
    l.map_flags = bpf_map__map_flags(map);
    const btf* b = bpf_object__btf(obj);
    // libbpf creates maps of maps without key/value BTF; describe them as the kernel will.
    const bool of_maps =
        l.type == BPF_MAP_TYPE_ARRAY_OF_MAPS || l.type == BPF_MAP_TYPE_HASH_OF_MAPS;
    if (b != nullptr && !of_maps) {
        if (uint32_t k = bpf_map__btf_key_type_id(map)) l.key = btf_type_text(b, k);
        if (uint32_t v = bpf_map__btf_value_type_id(map)) l.value = btf_type_text(b, v);
    }
    return l;
}

Result<Converter> Converter::build(const btf* from, uint32_t from_id, const btf* to, uint32_t to_id,
                                   const std::string& what) {
    Converter c;
    const int64_t fs = type_size(from, from_id), ts = type_size(to, to_id);
    if (fs < 0 || ts < 0) return Error{EINVAL, what + ": type without a size"};
    c.from_size_ = static_cast<uint32_t>(fs);
    c.to_size_ = static_cast<uint32_t>(ts);
    if (btf_type_text(from, from_id) == btf_type_text(to, to_id)) {
        c.identity_ = true;
        return c;
    }
    PlanBuilder pb(from, to);
    if (auto r = pb.add(from_id, 0, to_id, 0, what); !r) return r.error();
    c.ops_ = pb.take();
    return c;
}

Converter Converter::identity(uint32_t size) {
    Converter c;
    c.from_size_ = c.to_size_ = size;
    c.identity_ = true;
    return c;
}

Result<void> Converter::convert(const uint8_t* in, uint8_t* out) const {
    if (identity_) {
        std::memcpy(out, in, to_size_);
        return {};
    }
    std::memset(out, 0, to_size_);
    for (const auto& op : ops_) {
        if (op.from_size == op.to_size) {  // a plain copy (equal widths need no extension)
            std::memcpy(out + op.to_off, in + op.from_off, op.to_size);
            continue;
        }
        uint64_t v = read_uint(in + op.from_off, op.from_size);
        if (op.is_signed && op.from_size < 8 && (v >> (op.from_size * 8 - 1)) & 1)
            v |= ~uint64_t{0} << (op.from_size * 8);  // sign-extend
        if (op.to_size < 8) {
            // It must come back unchanged from the narrower type.
            const uint64_t mask = (uint64_t{1} << (op.to_size * 8)) - 1;
            uint64_t back = v & mask;
            if (op.is_signed && (back >> (op.to_size * 8 - 1)) & 1) back |= ~mask;
            if (back != v)
                return Error{ERANGE, op.member + ": value " + std::to_string(v) +
                                         " does not fit in " + std::to_string(op.to_size) +
                                         " bytes"};
        }
        std::memcpy(out + op.to_off, &v, op.to_size);
    }
    return {};
}

bool copyable(uint32_t t) {
    switch (t) {
        case BPF_MAP_TYPE_HASH:
        case BPF_MAP_TYPE_ARRAY:
        case BPF_MAP_TYPE_PERCPU_HASH:
        case BPF_MAP_TYPE_PERCPU_ARRAY:
        case BPF_MAP_TYPE_LRU_HASH:
        case BPF_MAP_TYPE_LRU_PERCPU_HASH:
        case BPF_MAP_TYPE_LPM_TRIE:
        case BPF_MAP_TYPE_ARRAY_OF_MAPS:
        case BPF_MAP_TYPE_HASH_OF_MAPS:
            return true;
        default:
            return false;
    }
}

Result<CopyStats> copy_map(int from_fd, int to_fd, const std::string& name, CopyMode mode) {
    auto fi = map_info(from_fd, "old " + name);
    if (!fi) return fi.error();
    auto ti = map_info(to_fd, "new " + name);
    if (!ti) return ti.error();
    if (fi->type != ti->type)
        return Error{EINVAL, name + ": the map type changed (" + std::to_string(fi->type) + " -> " +
                                 std::to_string(ti->type) + "); no conversion between types"};
    if (!copyable(fi->type))
        return Error{EINVAL, name + ": maps of type " + std::to_string(fi->type) +
                                 " cannot be copied from user space"};
    BtfPtr fb, tb;
    if (fi->btf_id) fb.reset(btf__load_from_kernel_by_id(fi->btf_id));
    if (ti->btf_id) tb.reset(btf__load_from_kernel_by_id(ti->btf_id));
    auto kc = converter_for(fb.get(), fi->btf_key_type_id, fi->key_size, tb.get(),
                            ti->btf_key_type_id, ti->key_size, name + " key");
    if (!kc) return kc.error();
    const bool of_maps = is_map_of_maps(fi->type);
    auto vc = of_maps ? Result<Converter>(Converter::identity(sizeof(uint32_t)))
                      : converter_for(fb.get(), fi->btf_value_type_id, fi->value_size, tb.get(),
                                      ti->btf_value_type_id, ti->value_size, name + " value");
    if (!vc) return vc.error();
    const bool missing_only = mode == CopyMode::MissingKeys;
    if (missing_only && is_array(fi->type)) return CopyStats{};
    const uint64_t flags = missing_only ? BPF_NOEXIST : BPF_ANY;

    const uint32_t ncpu =
        is_percpu(fi->type) ? static_cast<uint32_t>(libbpf_num_possible_cpus()) : 1;
    if (ncpu == 0 || ncpu > 1u << 16) return Error{EINVAL, "count possible CPUs"};
    const uint32_t fstride = is_percpu(fi->type) ? (fi->value_size + 7) / 8 * 8 : fi->value_size;
    const uint32_t tstride = is_percpu(ti->type) ? (ti->value_size + 7) / 8 * 8 : ti->value_size;
    std::vector<uint8_t> key(fi->key_size), next(fi->key_size), nkey(ti->key_size);
    std::vector<uint8_t> val(static_cast<size_t>(fstride) * ncpu);
    std::vector<uint8_t> nval(static_cast<size_t>(tstride) * ncpu);
    std::vector<uint8_t> copied;  // the new keys, back to back, for the check
    CopyStats st;
    const bool converting = !kc->is_identity() || !vc->is_identity();
    // A map that changes while it is walked can restart the walk (a deleted key makes the
    // kernel start over); bound it.
    const uint64_t max_steps = uint64_t{fi->max_entries} * 4 + 1024;
    uint64_t steps = 0;
    bool first = true;
    while (bpf_map_get_next_key(from_fd, first ? nullptr : key.data(), next.data()) == 0) {
        first = false;
        key.swap(next);
        if (++steps > max_steps)
            return Error{EAGAIN, name + ": the map kept changing while it was copied"};
        if (bpf_map_lookup_elem(from_fd, key.data(), val.data()) != 0) {
            if (errno == ENOENT) continue;  // deleted meanwhile
            return sys_error(name + ": read an entry");
        }
        if (is_array(fi->type) &&
            std::all_of(val.begin(), val.end(), [](uint8_t b) { return b == 0; })) {
            ++st.skipped;
            continue;
        }
        if (auto r = kc->convert(key.data(), nkey.data()); !r) return r.error();
        if (is_array(ti->type)) {
            uint32_t idx = 0;
            std::memcpy(&idx, nkey.data(), sizeof idx);
            if (idx >= ti->max_entries) {
                ++st.dropped;
                continue;
            }
        }
        int rc = 0;
        if (of_maps) {
            uint32_t id = 0;
            std::memcpy(&id, val.data(), sizeof id);
            Fd inner(bpf_map_get_fd_by_id(id));
            if (!inner.valid()) {
                if (errno == ENOENT) continue;  // replaced and freed meanwhile
                return sys_error(name + ": open inner map " + std::to_string(id));
            }
            int fd = inner.get();
            rc = bpf_map_update_elem(to_fd, nkey.data(), &fd, flags);
        } else {
            for (uint32_t c = 0; c < ncpu; ++c) {
                auto r = vc->convert(val.data() + static_cast<size_t>(c) * fstride,
                                     nval.data() + static_cast<size_t>(c) * tstride);
                if (!r) return r.error();
            }
            rc = bpf_map_update_elem(to_fd, nkey.data(), nval.data(), flags);
        }
        if (rc != 0 && missing_only && errno == EEXIST) continue;
        if (rc != 0) return sys_error(name + ": write an entry into the new map");
        copied.insert(copied.end(), nkey.begin(), nkey.end());
        ++st.entries;
        if (converting) ++st.converted;
    }
    if (errno != ENOENT) return sys_error(name + ": walk the old map");
    // Nothing but us writes the new map yet: every key copied must be there (an LRU map
    // may have evicted some to make room, which the caller sees as dropped). In
    // MissingKeys mode the new programs run: they may delete entries at any time.
    if (missing_only) return st;
    for (size_t off = 0; off < copied.size(); off += ti->key_size) {
        if (bpf_map_lookup_elem(to_fd, copied.data() + off, nval.data()) == 0) continue;
        if (is_lru(ti->type) && errno == ENOENT) {
            ++st.dropped;
            continue;
        }
        return sys_error(name + ": check the new map: a copied entry is missing");
    }
    return st;
}

}  // namespace pbpf
