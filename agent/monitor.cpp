// Monitor: counters, rates, and their API and Prometheus renderings (see monitor.h).
#include "agent/monitor.h"

#include <algorithm>
#include <numeric>

#include <spdlog/spdlog.h>

#include "agent/api_error.h"
#include "agent/loader.h"
#include "maps/abi/events.h"
#include "maps/abi/types.h"
#include "maps/policy_map.h"

namespace pbpf::agent {

using nlohmann::json;

namespace {

const char* dir_name(int d) { return d == PBPF_DIR_INGRESS ? "ingress" : "egress"; }

}  // namespace

Rate rate_between(uint64_t prev_packets, uint64_t prev_bytes, uint64_t cur_packets,
                  uint64_t cur_bytes, double seconds) {
    Rate r;
    if (seconds <= 0 || cur_packets < prev_packets || cur_bytes < prev_bytes) return r;
    r.packets_per_second = static_cast<double>(cur_packets - prev_packets) / seconds;
    r.bits_per_second = static_cast<double>(cur_bytes - prev_bytes) * 8 / seconds;
    return r;
}

std::string drop_reason_name(unsigned reason) {
    switch (reason) {
        case PBPF_REASON_RULE:
            return "rule";
        case PBPF_REASON_DEFAULT:
            return "default";
        case PBPF_REASON_RELATED:
            return "related";
        case PBPF_REASON_MALFORMED:
            return "malformed";
        case PBPF_REASON_NO_POLICY:
            return "no-policy";
        case PBPF_REASON_REEVALUATED:
            return "persona-changed";
        case PBPF_REASON_NOT_IP:
            return "not-ip";
        case PBPF_REASON_FRAGMENT:
            return "fragment";
        case PBPF_REASON_FAIL_CLOSED:
            return "fail-closed";
        case PBPF_REASON_RATE_LIMIT:
            return "rate-limit";
        case PBPF_REASON_SOVEREIGNTY:
            return "sovereignty";
        case PBPF_REASON_NEXT_HOP:
            return "next-hop";
        default:
            return "other";
    }
}

Monitor::Monitor(const Loader& loader, std::function<Catalog()> catalog, std::mutex& api_mutex,
                 std::chrono::milliseconds interval)
    : loader_(loader), catalog_(std::move(catalog)), api_mu_(api_mutex), interval_(interval) {}

Monitor::~Monitor() { stop(); }

void Monitor::start() {
    thread_ = std::thread([this] { run(); });
}

void Monitor::stop() {
    {
        std::lock_guard<std::mutex> lock(wake_mu_);
        stopping_ = true;
    }
    wake_.notify_all();
    if (thread_.joinable()) thread_.join();
}

void Monitor::run() {
    std::unique_lock<std::mutex> lock(wake_mu_);
    while (!stopping_) {
        lock.unlock();
        std::vector<MonitorProvider*> providers;
        {
            std::lock_guard<std::mutex> l(mu_);
            providers = providers_;
        }
        for (auto* p : providers) {
            try {
                p->tick();
            } catch (const std::exception& e) {
                spdlog::warn("monitor: a provider's tick failed: {}", e.what());
            }
        }
        try {
            Catalog cat;
            {
                std::lock_guard<std::mutex> api(api_mu_);
                cat = catalog_();
            }
            sample(cat);
        } catch (const std::exception& e) {
            spdlog::warn("monitor: sampling failed: {}", e.what());
        }
        lock.lock();
        wake_.wait_for(lock, interval_, [this] { return stopping_; });
    }
}

void Monitor::sample_locked() { sample(catalog_()); }

void Monitor::add_provider(MonitorProvider* p) {
    std::lock_guard<std::mutex> lock(mu_);
    providers_.push_back(p);
}

// Reads every counter of the catalog, then (under the lock) computes rates against the
// last tick's values of the same persona id or binding slot.
void Monitor::sample(const Catalog& cat) {
    MonitorSnapshot next;
    for (const auto& p : cat.personas) {
        PersonaStats s;
        s.name = p.name;
        s.id = p.id;
        auto c = read_counters(loader_.counters_fd(), p.id);
        if (!c) continue;
        s.counters = *c;
        next.personas.push_back(std::move(s));
    }
    // Counters first, then the reasons: reasons read later only add drops, so a shortfall
    // means drops the kernel could not attribute.
    std::map<uint32_t, BindingDropReasons> drops;
    bool read_drops = false;
    for (const auto& b : cat.bindings) {
        BindingStats s;
        s.kind = b.kind;
        s.target = b.target;
        s.persona = b.persona;
        s.key = b.key;
        s.slot = loader_.slots().find(b.key);
        if (s.slot != 0) {
            auto c = read_binding_counters(loader_.binding_counters_fd(), s.slot);
            if (c) s.counters = *c;
            read_drops = true;
        }
        next.bindings.push_back(std::move(s));
    }
    if (read_drops) {
        auto d = read_binding_drops(loader_.binding_drops_fd());
        if (d)
            drops = std::move(*d);
        else
            spdlog::warn("monitor: {}", d.error().what());
    }
    for (auto& b : next.bindings)
        if (b.slot != 0) attribute_binding_drops(b, drops);
    const auto now = std::chrono::steady_clock::now();
    next.sampled_at = std::chrono::system_clock::now();

    std::lock_guard<std::mutex> lock(mu_);
    const double seconds = last_tick_ == std::chrono::steady_clock::time_point{}
                               ? 0
                               : std::chrono::duration<double>(now - last_tick_).count();
    if (seconds > 0 && seconds * 2000 < static_cast<double>(interval_.count())) {
        // Too soon for a meaningful rate: fresh totals, the last tick's rates.
        for (auto& p : next.personas)
            for (const auto& o : snap_.personas)
                if (o.id == p.id) std::copy(o.rate, o.rate + 2, p.rate);
        for (auto& b : next.bindings)
            for (const auto& o : snap_.bindings)
                if (o.key == b.key && o.slot == b.slot) std::copy(o.rate, o.rate + 2, b.rate);
        next.interval_seconds = snap_.interval_seconds;
        snap_ = std::move(next);  // the baseline stays the last tick's counters
        return;
    }
    for (auto& p : next.personas) {
        for (const auto& o : base_personas_) {
            if (o.id != p.id || o.name != p.name) continue;
            for (int d = 0; d < 2; ++d) {
                const auto& a = o.counters.dir[d];
                const auto& c = p.counters.dir[d];
                p.rate[d] = rate_between(a.allowed_packets + a.audited_packets,
                                         a.allowed_bytes + a.audited_bytes,
                                         c.allowed_packets + c.audited_packets,
                                         c.allowed_bytes + c.audited_bytes, seconds);
            }
        }
    }
    for (auto& b : next.bindings) {
        for (const auto& o : base_bindings_) {
            if (!(o.key == b.key) || o.slot != b.slot || b.slot == 0) continue;
            for (int d = 0; d < 2; ++d) {
                const auto& a = o.counters.dir[d];
                const auto& c = b.counters.dir[d];
                b.rate[d] = rate_between(a.passed_packets, a.passed_bytes, c.passed_packets,
                                         c.passed_bytes, seconds);
            }
        }
    }
    next.interval_seconds = seconds;
    base_personas_ = next.personas;
    base_bindings_ = next.bindings;
    last_tick_ = now;
    snap_ = std::move(next);
}

MonitorSnapshot Monitor::snapshot() const {
    std::lock_guard<std::mutex> lock(mu_);
    return snap_;
}

void attribute_binding_drops(BindingStats& b, const std::map<uint32_t, BindingDropReasons>& drops) {
    b.dropped_by_reason = {};
    if (auto it = drops.find(b.slot); it != drops.end()) b.dropped_by_reason = it->second;
    for (int d = 0; d < PBPF_DIR_COUNT; ++d) {
        auto& r = b.dropped_by_reason[d];
        const uint64_t attributed = std::accumulate(r.begin() + 1, r.end(), uint64_t{0});
        const uint64_t total = b.counters.dir[d].dropped_packets;
        r[0] = total > attributed ? total - attributed : 0;
    }
}

namespace {
// {"rule": 3, "default": 12}: the reasons that occurred.
json reasons_json(const std::array<uint64_t, PBPF_DROP_REASON_SLOTS>& by_reason) {
    json reasons = json::object();
    for (unsigned r = 0; r < PBPF_DROP_REASON_SLOTS; ++r)
        if (by_reason[r]) reasons[drop_reason_name(r)] = by_reason[r];
    return reasons;
}
}  // namespace

json persona_json(const PersonaStats& p, const std::vector<BindingStats>& bindings,
                  double interval_seconds, const std::vector<const MonitorProvider*>& providers) {
    json row = {{"persona", p.name}, {"id", p.id}};
    for (int d = 0; d < 2; ++d) {
        const auto& c = p.counters.dir[d];
        std::array<uint64_t, PBPF_DROP_REASON_SLOTS> by_reason;
        std::copy(std::begin(c.dropped_by_reason), std::end(c.dropped_by_reason),
                  by_reason.begin());
        row[dir_name(d)] = {{"allowed_packets", c.allowed_packets},
                            {"allowed_bytes", c.allowed_bytes},
                            {"denied_packets", c.denied_packets},
                            {"denied_bytes", c.denied_bytes},
                            {"audited_packets", c.audited_packets},
                            {"audited_bytes", c.audited_bytes},
                            {"dropped_by_reason", reasons_json(by_reason)},
                            {"rate",
                             {{"bits_per_second", p.rate[d].bits_per_second},
                              {"packets_per_second", p.rate[d].packets_per_second}}}};
    }
    row["rate_interval_seconds"] = interval_seconds;
    json arr = json::array();
    for (const auto& b : bindings) {
        if (b.persona != p.name) continue;
        json j = {{"kind", b.kind}, {"target", b.target}, {"counted", b.slot != 0}};
        for (int d = 0; d < 2; ++d) {
            const auto& c = b.counters.dir[d];
            j[dir_name(d)] = {{"passed_packets", c.passed_packets},
                              {"passed_bytes", c.passed_bytes},
                              {"dropped_packets", c.dropped_packets},
                              {"dropped_bytes", c.dropped_bytes},
                              {"dropped_by_reason", reasons_json(b.dropped_by_reason[d])},
                              {"rate",
                               {{"bits_per_second", b.rate[d].bits_per_second},
                                {"packets_per_second", b.rate[d].packets_per_second}}}};
        }
        for (const auto* prov : providers) prov->binding_fields(p, b, j);
        arr.push_back(std::move(j));
    }
    row["bindings"] = std::move(arr);
    return row;
}

json Monitor::stats_json(const std::optional<std::string>& persona) {
    Catalog cat = catalog_();
    if (persona && std::none_of(cat.personas.begin(), cat.personas.end(), [&](const PersonaRef& r) {
            return r.name == *persona && r.id != 0;
        }))
        throw ApiError(404, "no persona '" + *persona + "'");
    sample(cat);
    std::lock_guard<std::mutex> lock(mu_);
    json arr = json::array();
    for (const auto& p : snap_.personas) {
        if (persona && p.name != *persona) continue;
        json row = persona_json(p, snap_.bindings, snap_.interval_seconds,
                                {providers_.begin(), providers_.end()});
        for (const auto* prov : providers_) prov->persona_fields(p, row);
        arr.push_back(std::move(row));
    }
    return arr;
}

std::string render_metrics(const MonitorSnapshot& s,
                           const std::vector<const MonitorProvider*>& providers) {
    using T = MetricsWriter::Type;
    MetricsWriter w;
    w.family("personabpf_build_info", T::Gauge, "personabpf agent build; the value is 1");
    w.sample("personabpf_build_info", {{"version", PERSONABPF_VERSION}}, 1);
    w.family("personabpf_persona_packets_total", T::Counter,
             "Packets of a persona's workloads by direction and verdict");
    w.family("personabpf_persona_bytes_total", T::Counter,
             "Bytes of a persona's workloads by direction and verdict");
    w.family("personabpf_persona_drops_total", T::Counter,
             "Dropped packets of a persona's workloads by direction and reason");
    w.family("personabpf_persona_rate_bytes_per_second", T::Gauge,
             "Passed bytes per second of a persona over the last sampling interval");
    w.family("personabpf_persona_rate_packets_per_second", T::Gauge,
             "Passed packets per second of a persona over the last sampling interval");
    for (const auto& p : s.personas) {
        for (int d = 0; d < 2; ++d) {
            const auto& c = p.counters.dir[d];
            const std::string dir = dir_name(d);
            for (auto [verdict, pk, by] :
                 {std::tuple{"allowed", c.allowed_packets, c.allowed_bytes},
                  std::tuple{"denied", c.denied_packets, c.denied_bytes},
                  std::tuple{"audited", c.audited_packets, c.audited_bytes}}) {
                Labels l = {{"persona", p.name}, {"direction", dir}, {"verdict", verdict}};
                w.sample("personabpf_persona_packets_total", l, static_cast<double>(pk));
                w.sample("personabpf_persona_bytes_total", l, static_cast<double>(by));
            }
            for (unsigned r = 1; r <= PBPF_REASON_LAST; ++r)
                w.sample("personabpf_persona_drops_total",
                         {{"persona", p.name}, {"direction", dir}, {"reason", drop_reason_name(r)}},
                         static_cast<double>(c.dropped_by_reason[r]));
            Labels l = {{"persona", p.name}, {"direction", dir}};
            w.sample("personabpf_persona_rate_bytes_per_second", l, p.rate[d].bits_per_second / 8);
            w.sample("personabpf_persona_rate_packets_per_second", l, p.rate[d].packets_per_second);
        }
    }
    w.family("personabpf_binding_packets_total", T::Counter,
             "Packets of one binding's workloads by direction and verdict (passed, dropped)");
    w.family("personabpf_binding_bytes_total", T::Counter,
             "Bytes of one binding's workloads by direction and verdict (passed, dropped)");
    w.family("personabpf_binding_drops_total", T::Counter,
             "Dropped packets of one binding's workloads by direction and reason (only the "
             "reasons that occurred)");
    w.family("personabpf_binding_rate_bytes_per_second", T::Gauge,
             "Passed bytes per second of a binding over the last sampling interval");
    w.family("personabpf_binding_rate_packets_per_second", T::Gauge,
             "Passed packets per second of a binding over the last sampling interval");
    for (const auto& b : s.bindings) {
        if (b.slot == 0) continue;
        for (int d = 0; d < 2; ++d) {
            const auto& c = b.counters.dir[d];
            const std::string dir = dir_name(d);
            for (auto [verdict, pk, by] :
                 {std::tuple{"passed", c.passed_packets, c.passed_bytes},
                  std::tuple{"dropped", c.dropped_packets, c.dropped_bytes}}) {
                Labels l = {{"binding", b.target},
                            {"kind", b.kind},
                            {"persona", b.persona},
                            {"direction", dir},
                            {"verdict", verdict}};
                w.sample("personabpf_binding_packets_total", l, static_cast<double>(pk));
                w.sample("personabpf_binding_bytes_total", l, static_cast<double>(by));
            }
            for (unsigned r = 0; r < PBPF_DROP_REASON_SLOTS; ++r)
                if (b.dropped_by_reason[d][r])
                    w.sample("personabpf_binding_drops_total",
                             {{"binding", b.target},
                              {"kind", b.kind},
                              {"persona", b.persona},
                              {"direction", dir},
                              {"reason", drop_reason_name(r)}},
                             static_cast<double>(b.dropped_by_reason[d][r]));
            Labels l = {{"binding", b.target},
                        {"kind", b.kind},
                        {"persona", b.persona},
                        {"direction", dir}};
            w.sample("personabpf_binding_rate_bytes_per_second", l, b.rate[d].bits_per_second / 8);
            w.sample("personabpf_binding_rate_packets_per_second", l, b.rate[d].packets_per_second);
        }
    }
    for (const auto* p : providers) p->metrics(s, w);
    return w.render();
}

std::string Monitor::prometheus() const {
    std::lock_guard<std::mutex> lock(mu_);
    return render_metrics(snap_, {providers_.begin(), providers_.end()});
}

}  // namespace pbpf::agent
