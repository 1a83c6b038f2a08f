// Map layout migration (maps/map_migrate.h) on real kernel maps: two builds of the same
// maps (migrate.bpf.c), before and after a layout change, loaded side by side; entries
// written into the old maps are copied into the new ones.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "maps/map_migrate.h"
#include "tests/common/kernel_required.h"

namespace pbpf::test {
namespace {

struct Obj {
    bpf_object* obj = nullptr;
    ~Obj() { bpf_object__close(obj); }
    int fd(const char* map) const { return bpf_map__fd(bpf_object__find_map_by_name(obj, map)); }
    const bpf_map* map(const char* name) const { return bpf_object__find_map_by_name(obj, name); }
};

// The layouts of both versions (copied from migrate.bpf.c: the tests write and read them).
struct MKey {
    uint32_t a;
    uint16_t b, pad;
};
struct HVal1 {
    uint64_t x;
    uint32_t y, z, old, pad;
};
struct HVal2 {
    uint32_t y, pad;
    uint64_t w, x, z;
};
struct CVal1 {
    uint64_t packets, bytes;
};
struct CVal2 {
    uint64_t packets, bytes, extra[2];
};
struct LpmKey {
    uint32_t prefixlen;
    uint8_t addr[4];
};
struct NVal1 {
    uint64_t v;
    int32_t s;
    uint32_t pad;
};
struct NVal2 {
    uint32_t v;
    int16_t s;
    uint16_t pad;
};

class MapMigrate : public ::testing::Test {
  protected:
    void SetUp() override {
        if (::geteuid() != 0) PBPF_KERNEL_UNAVAILABLE("needs root");
        for (auto [o, path] :
             {std::pair{&v1_, PBPF_MIGRATE_V1_OBJECT}, std::pair{&v2_, PBPF_MIGRATE_V2_OBJECT}}) {
            o->obj = bpf_object__open_file(path, nullptr);
            ASSERT_NE(o->obj, nullptr) << path;
            if (int err = bpf_object__load(o->obj); err != 0)
                PBPF_KERNEL_UNAVAILABLE(std::string("load ") + path + ": " + std::strerror(-err));
        }
        ncpu_ = libbpf_num_possible_cpus();
        ASSERT_GT(ncpu_, 0);
    }

    Obj v1_, v2_;
    int ncpu_ = 0;
};

TEST_F(MapMigrate, LayoutsTellChangedMapsFromUnchangedOnes) {
    std::map<std::string, bool> same;
    for (const char* name :
         {"m_hash", "m_pcpu", "m_lru", "m_lpm", "m_narrow", "m_outer", "m_type"}) {
        auto a = kernel_map_layout(v1_.fd(name));
        auto b = kernel_map_layout(v2_.fd(name));
        ASSERT_TRUE(a && b) << name;
        // What the object says before loading is what the kernel holds after.
        auto ob = object_map_layout(v2_.obj, v2_.map(name));
        ASSERT_TRUE(ob);
        EXPECT_TRUE(ob->same_layout(*b)) << name << ": " << ob->value << " vs " << b->value;
        EXPECT_EQ(ob->version(), b->version()) << name;
        same[name] = a->same_layout(*b);
        EXPECT_EQ(same[name], a->version() == b->version()) << name;
        EXPECT_EQ(a->version().size(), 16u);
    }
    EXPECT_FALSE(same["m_hash"]);
    EXPECT_FALSE(same["m_pcpu"]);
    EXPECT_TRUE(same["m_lru"]) << "a renamed struct of the same members is the same layout";
    EXPECT_FALSE(same["m_lpm"]);
    EXPECT_FALSE(same["m_narrow"]);
    EXPECT_TRUE(same["m_outer"]);
    EXPECT_FALSE(same["m_type"]);
    auto h = kernel_map_layout(v1_.fd("m_hash"));
    ASSERT_TRUE(h);
    EXPECT_EQ(h->key, "{a:u32@0,b:u16@32,pad:u16@48}8");
}

TEST_F(MapMigrate, StructMembersMoveWidenAppearAndGoByName) {
    const int from = v1_.fd("m_hash"), to = v2_.fd("m_hash");
    for (uint32_t i = 0; i < 100; ++i) {
        MKey k{i, static_cast<uint16_t>(i * 3), 0};
        HVal1 v{uint64_t{1} << 40 | i, i + 7, 0xfffffff0u + (i % 16), 0xdead, 0};
        ASSERT_EQ(bpf_map_update_elem(from, &k, &v, BPF_ANY), 0);
    }
    auto st = copy_map(from, to, "m_hash");
    ASSERT_TRUE(st) << st.error().what();
    EXPECT_EQ(st->entries, 100u);
    EXPECT_EQ(st->converted, 100u);
    for (uint32_t i = 0; i < 100; ++i) {
        MKey k{i, static_cast<uint16_t>(i * 3), 0};
        HVal2 v{};
        ASSERT_EQ(bpf_map_lookup_elem(to, &k, &v), 0) << i;
        EXPECT_EQ(v.x, uint64_t{1} << 40 | i);
        EXPECT_EQ(v.y, i + 7);
        EXPECT_EQ(v.z, 0xfffffff0u + (i % 16)) << "unsigned: widened without sign extension";
        EXPECT_EQ(v.w, 0u) << "a new member starts at zero";
    }
}

TEST_F(MapMigrate, PerCpuValuesAreConvertedCpuByCpuAndZeroSlotsSkipped) {
    const int from = v1_.fd("m_pcpu"), to = v2_.fd("m_pcpu");
    std::vector<CVal1> in(static_cast<size_t>(ncpu_));
    for (int c = 0; c < ncpu_; ++c) in[c] = {uint64_t(10 + c), uint64_t(1000 * (c + 1))};
    for (uint32_t idx : {3u, 17u})
        ASSERT_EQ(bpf_map_update_elem(from, &idx, in.data(), BPF_ANY), 0);
    auto st = copy_map(from, to, "m_pcpu");
    ASSERT_TRUE(st) << st.error().what();
    EXPECT_EQ(st->entries, 2u);
    EXPECT_EQ(st->skipped, 62u);  // the all-zero rows
    std::vector<CVal2> out(static_cast<size_t>(ncpu_));
    for (uint32_t idx : {3u, 17u}) {
        ASSERT_EQ(bpf_map_lookup_elem(to, &idx, out.data()), 0);
        for (int c = 0; c < ncpu_; ++c) {
            EXPECT_EQ(out[c].packets, uint64_t(10 + c)) << "cpu " << c;
            EXPECT_EQ(out[c].bytes, uint64_t(1000 * (c + 1)));
            EXPECT_EQ(out[c].extra[0] + out[c].extra[1], 0u);
        }
    }
}

TEST_F(MapMigrate, UnchangedLayoutIsCopiedAsIsAndLpmKeysKeepTheirPrefixes) {
    const int lru_from = v1_.fd("m_lru"), lru_to = v2_.fd("m_lru");
    for (uint32_t i = 0; i < 500; ++i) {
        MKey k{i, 1, 0};
        CVal1 v{i, i * 2};
        ASSERT_EQ(bpf_map_update_elem(lru_from, &k, &v, BPF_ANY), 0);
    }
    auto st = copy_map(lru_from, lru_to, "m_lru");
    ASSERT_TRUE(st) << st.error().what();
    EXPECT_EQ(st->entries, 500u);
    EXPECT_EQ(st->converted, 0u);
    EXPECT_EQ(st->dropped, 0u);
    MKey k{123, 1, 0};
    CVal1 v{};
    ASSERT_EQ(bpf_map_lookup_elem(lru_to, &k, &v), 0);
    EXPECT_EQ(v.bytes, 246u);

    const int lpm_from = v1_.fd("m_lpm"), lpm_to = v2_.fd("m_lpm");
    LpmKey a{8, {10, 0, 0, 0}}, b{24, {10, 1, 2, 0}};
    uint32_t va = 1, vb = 0xffffffffu;
    ASSERT_EQ(bpf_map_update_elem(lpm_from, &a, &va, BPF_ANY), 0);
    ASSERT_EQ(bpf_map_update_elem(lpm_from, &b, &vb, BPF_ANY), 0);
    st = copy_map(lpm_from, lpm_to, "m_lpm");
    ASSERT_TRUE(st) << st.error().what();
    EXPECT_EQ(st->entries, 2u);
    // Longest-prefix lookups answer as before.
    LpmKey q{32, {10, 1, 2, 9}};
    uint64_t out = 0;
    ASSERT_EQ(bpf_map_lookup_elem(lpm_to, &q, &out), 0);
    EXPECT_EQ(out, 0xffffffffu);
    q = {32, {10, 9, 9, 9}};
    ASSERT_EQ(bpf_map_lookup_elem(lpm_to, &q, &out), 0);
    EXPECT_EQ(out, 1u);
}

TEST_F(MapMigrate, NarrowingKeepsValuesThatFitAndRefusesOthers) {
    const int from = v1_.fd("m_narrow"), to = v2_.fd("m_narrow");
    uint32_t idx = 1;
    NVal1 small{70000, -300, 0};
    ASSERT_EQ(bpf_map_update_elem(from, &idx, &small, BPF_ANY), 0);
    auto st = copy_map(from, to, "m_narrow");
    ASSERT_TRUE(st) << st.error().what();
    NVal2 out{};
    ASSERT_EQ(bpf_map_lookup_elem(to, &idx, &out), 0);
    EXPECT_EQ(out.v, 70000u);
    EXPECT_EQ(out.s, -300) << "signed: narrowed with its sign";

    idx = 2;
    NVal1 big{uint64_t{1} << 33, 0, 0};
    ASSERT_EQ(bpf_map_update_elem(from, &idx, &big, BPF_ANY), 0);
    st = copy_map(from, to, "m_narrow");
    ASSERT_FALSE(st);
    EXPECT_EQ(st.error().err, ERANGE);
    EXPECT_NE(st.error().message.find("m_narrow value.v"), std::string::npos) << st.error().what();
    NVal1 neg{1, -40000, 0};
    ASSERT_EQ(bpf_map_update_elem(from, &idx, &neg, BPF_ANY), 0);
    st = copy_map(from, to, "m_narrow");
    ASSERT_FALSE(st);
    EXPECT_NE(st.error().message.find("m_narrow value.s"), std::string::npos) << st.error().what();
}

TEST_F(MapMigrate, MapsOfMapsCarryTheirInnerMapsByReference) {
    const int from = v1_.fd("m_outer"), to = v2_.fd("m_outer");
    LIBBPF_OPTS(bpf_map_create_opts, opts);
    int inner = bpf_map_create(BPF_MAP_TYPE_HASH, "pbpf_t_inner", 4, 8, 16, &opts);
    ASSERT_GE(inner, 0);
    uint32_t k = 5;
    uint64_t v = 99;
    ASSERT_EQ(bpf_map_update_elem(inner, &k, &v, BPF_ANY), 0);
    uint32_t slot = 2;
    ASSERT_EQ(bpf_map_update_elem(from, &slot, &inner, BPF_ANY), 0);
    auto st = copy_map(from, to, "m_outer");
    ::close(inner);
    ASSERT_TRUE(st) << st.error().what();
    EXPECT_EQ(st->entries, 1u);
    uint32_t id_from = 0, id_to = 0;
    ASSERT_EQ(bpf_map_lookup_elem(from, &slot, &id_from), 0);
    ASSERT_EQ(bpf_map_lookup_elem(to, &slot, &id_to), 0);
    EXPECT_EQ(id_from, id_to) << "the same inner map, not a copy";
}

TEST_F(MapMigrate, ATypeChangeIsRefusedByName) {
    auto st = copy_map(v1_.fd("m_type"), v2_.fd("m_type"), "m_type");
    ASSERT_FALSE(st);
    EXPECT_NE(st.error().message.find("m_type: the map type changed"), std::string::npos)
        << st.error().what();
}

}  // namespace
}  // namespace pbpf::test
