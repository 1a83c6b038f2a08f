// Lowering of every persona section but the security rules: the settings slot
// (maps/abi/settings.h), the DNS search names, the forwards (maps/abi/forward.h), and the
// trie's encryption-exception and sovereignty-exempt entries (maps/abi/policy.h).
#include <algorithm>
#include <cstring>
#include <initializer_list>

#include "pdl-compiler/lower.h"

namespace pdl {

namespace {

pbpf_family family_of(ir::Family f) {
    return f == ir::Family::V4 ? PBPF_FAMILY_IPV4 : PBPF_FAMILY_IPV6;
}

pbpf_addr host_addr(const ir::Cidr& c) {
    pbpf_addr a;
    std::memset(&a, 0, sizeof a);
    a.family = static_cast<__u8>(family_of(c.family));
    std::memcpy(a.addr, c.addr.data(), c.family == ir::Family::V4 ? 4 : 16);
    return a;
}

bool cidr_less(const ir::Cidr& a, const ir::Cidr& b) {
    if (a.family != b.family) return a.family < b.family;
    if (a.addr != b.addr) return a.addr < b.addr;
    return a.prefix_len < b.prefix_len;
}

__u16 tls_version(ir::TlsVersion v) {
    switch (v) {
        case ir::TlsVersion::V1_0:
            return PBPF_TLS_1_0;
        case ir::TlsVersion::V1_1:
            return PBPF_TLS_1_1;
        case ir::TlsVersion::V1_2:
            return PBPF_TLS_1_2;
        case ir::TlsVersion::V1_3:
            return PBPF_TLS_1_3;
    }
    return PBPF_TLS_1_3;
}

__u8 priority(ir::Priority p) {
    switch (p) {
        case ir::Priority::Low:
            return PBPF_PRIORITY_LOW;
        case ir::Priority::Normal:
            return PBPF_PRIORITY_NORMAL;
        case ir::Priority::High:
            return PBPF_PRIORITY_HIGH;
        case ir::Priority::Critical:
            return PBPF_PRIORITY_CRITICAL;
    }
    return PBPF_PRIORITY_UNSET;
}

// The exceptions become a policy of their own, lowered by the same algorithm as the
// rules: each exception is an allow rule (a direction-less one, one rule per direction)
// with the exception's 1-based index as its id, everything else is denied. The entries
// are then retagged ENC_ADDR/ENC_PORT, so ALLOW reads "exempt".
void encryption(const ir::Encryption& enc, pbpf::PersonaImage& image) {
    if (!enc.required) return;
    image.settings.flags |= PBPF_SETTINGS_F_ENCRYPTION_REQUIRED;
    image.settings.min_tls = tls_version(enc.min_tls);
    if (enc.exceptions.empty()) return;

    std::vector<ir::Rule> rules;
    for (size_t i = 0; i < enc.exceptions.size(); ++i) {
        const ir::Match& m = enc.exceptions[i];
        ir::Rule r;
        r.id = static_cast<uint32_t>(i + 1);
        r.action = ir::Action::Allow;
        r.proto = m.proto;
        r.ports = m.ports;
        r.peers = m.peers;
        r.text = m.text;
        r.loc = m.loc;
        for (ir::Direction d : {ir::Direction::Ingress, ir::Direction::Egress}) {
            if (m.direction && *m.direction != d) continue;
            r.direction = d;
            rules.push_back(r);
        }
    }
    // Class ids continue after the rules' classes, so a class id names one class in the
    // whole image.
    LoweredPolicy lowered =
        lower_policy(rules, ir::Action::Deny, ir::Action::Deny, image.audit, image.class_count + 1);
    image.entries.reserve(image.entries.size() + lowered.entries.size());
    for (auto& e : lowered.entries) {
        e.key.kind = e.key.kind == PBPF_ENTRY_ADDR ? PBPF_ENTRY_ENC_ADDR : PBPF_ENTRY_ENC_PORT;
        image.entries.push_back(e);
    }
    image.class_count = lowered.next_class - 1;
}

pbpf_ids_threshold threshold(const ir::Threshold& t) {
    pbpf_ids_threshold out;
    out.count = t.count;
    out.window_ns = t.window_ns;
    out.block_ns = t.block_ns;
    return out;
}

void ids(const ir::Ids& ids, pbpf_persona_settings& s) {
    if (ids.syn_flood) {
        s.flags |= PBPF_SETTINGS_F_IDS_SYN_FLOOD;
        s.syn_flood = threshold(*ids.syn_flood);
    }
    if (ids.port_scan) {
        s.flags |= PBPF_SETTINGS_F_IDS_PORT_SCAN;
        s.port_scan = threshold(*ids.port_scan);
    }
}

void qos(const ir::Qos& q, pbpf_persona_settings& s) {
    if (q.egress) {
        s.flags |= PBPF_SETTINGS_F_QOS_EGRESS;
        s.egress.rate_bps = q.egress->rate_bps;
        s.egress.burst_bytes = q.egress->burst_bytes;
    }
    if (q.ingress) {
        s.flags |= PBPF_SETTINGS_F_QOS_INGRESS;
        s.ingress.rate_bps = q.ingress->rate_bps;
        s.ingress.burst_bytes = q.ingress->burst_bytes;
    }
    if (q.priority) s.priority = priority(*q.priority);
    if (q.latency_target_ns) s.latency_target_ns = *q.latency_target_ns;
}

// Next hops are a set: sorted and de-duplicated, so equal sets give equal settings. The
// semantic pass rejects more than PBPF_MAX_NEXT_HOPS; should more arrive, the first ones
// in that order are kept (fewer allowed next hops, never more).
void topology(const ir::Topology& t, pbpf_persona_settings& s) {
    if (t.route) {
        if (t.route->kind == ir::Route::Kind::Table) {
            s.flags |= PBPF_SETTINGS_F_ROUTE_TABLE;
            s.route_table = t.route->table;
        } else {
            s.flags |= PBPF_SETTINGS_F_ROUTE_VIA;
            s.route_via = host_addr(t.route->via);
        }
    }
    std::vector<ir::Cidr> hops = t.next_hops;
    std::sort(hops.begin(), hops.end(), cidr_less);
    hops.erase(std::unique(hops.begin(), hops.end()), hops.end());
    for (const auto& h : hops) {
        if (s.next_hop_count == PBPF_MAX_NEXT_HOPS) break;
        s.next_hops[s.next_hop_count++] = host_addr(h);
    }
    if (t.max_hops) s.max_hops = *t.max_hops;
}

// Without a country list the section enforces nothing: no flags, no exempt entries.
void sovereignty(const ir::Sovereignty& sov, pbpf::PersonaImage& image) {
    if (!sov.list) return;
    pbpf_persona_settings& s = image.settings;
    s.flags |= PBPF_SETTINGS_F_SOVEREIGNTY;
    if (*sov.list == ir::Action::Deny) s.flags |= PBPF_SETTINGS_F_SOV_DENY_LIST;
    if (sov.unknown == ir::Action::Allow) s.flags |= PBPF_SETTINGS_F_SOV_UNKNOWN_ALLOW;
    if (sov.on_violation == ir::OnViolation::Log) s.flags |= PBPF_SETTINGS_F_SOV_LOG_ONLY;
    for (const auto& code : sov.countries) {
        // The semantic pass admits ISO 3166-1 alpha-2 codes only.
        if (code.size() != 2 || code[0] < 'A' || code[0] > 'Z' || code[1] < 'A' || code[1] > 'Z')
            continue;
        const unsigned bit = static_cast<unsigned>(code[0] - 'A') * 26 + (code[1] - 'A');
        s.countries[bit / 64] |= uint64_t{1} << (bit % 64);
    }
    for (const auto& c : sov.exempt)
        image.entries.push_back(
            pbpf::make_sov_exempt_entry(family_of(c.family), c.addr.data(), c.prefix_len));
}

// Servers keep their order (the first is preferred). The semantic pass rejects more than
// PBPF_MAX_DNS_SERVERS; should more arrive, the first ones are kept.
void dns(const ir::Dns& d, pbpf::PersonaImage& image) {
    pbpf_persona_settings& s = image.settings;
    for (const auto& server : d.servers) {
        if (s.dns_count == PBPF_MAX_DNS_SERVERS) break;
        s.dns_servers[s.dns_count++] = host_addr(server);
    }
    image.dns_search = d.search;
}

// One entry per forward. Should two forwards share a key (the semantic pass rejects
// that), the first in source order wins.
void forwards(const std::vector<ir::Forward>& fwds, pbpf::PersonaImage& image) {
    for (const auto& f : fwds) {
        const bool egress = f.direction == ir::Direction::Egress;
        const uint8_t zero[16] = {};
        const ir::Cidr* match = egress && f.match_addr ? &*f.match_addr : nullptr;
        const ir::Cidr* target = egress && f.target_addr ? &*f.target_addr : nullptr;
        pbpf::ForwardEntry e =
            pbpf::make_forward_entry(egress ? PBPF_DIR_EGRESS : PBPF_DIR_INGRESS,
                                     f.proto == ir::Proto::Udp ? PBPF_PROTO_UDP : PBPF_PROTO_TCP,
                                     match ? static_cast<uint8_t>(family_of(match->family)) : 0,
                                     match ? match->addr.data() : zero, f.match_port,
                                     target ? static_cast<uint8_t>(family_of(target->family)) : 0,
                                     target ? target->addr.data() : zero, f.target_port);
        const bool taken = std::any_of(
            image.forwards.begin(), image.forwards.end(), [&](const pbpf::ForwardEntry& other) {
                return std::memcmp(&other.key, &e.key, sizeof e.key) == 0;
            });
        if (!taken) image.forwards.push_back(e);
    }
}

}  // namespace

void lower_settings(const ir::Persona& persona, pbpf::PersonaImage& image) {
    std::memset(&image.settings, 0, sizeof image.settings);
    if (image.audit) image.settings.flags |= PBPF_SETTINGS_F_AUDIT;
    encryption(persona.encryption, image);
    ids(persona.ids, image.settings);
    qos(persona.qos, image.settings);
    topology(persona.topology, image.settings);
    sovereignty(persona.sovereignty, image);
    dns(persona.dns, image);
    forwards(persona.forwards, image);
}

}  // namespace pdl
