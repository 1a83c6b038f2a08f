// Conntrack table and flow-event stream of the agent.
#include "agent/flows.h"
#include "agent/monitor.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <time.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <httplib.h>

#include <chrono>
#include <cstring>
#include <filesystem>

#include <spdlog/spdlog.h>

#include "agent/api_error.h"
#include "agent/api_server.h"
#include "agent/clock.h"
#include "maps/abi/limits.h"

namespace pbpf::agent {
namespace {

using nlohmann::json;

std::string addr_text(uint8_t family, const uint8_t* addr) {
    char buf[INET6_ADDRSTRLEN] = {0};
    if (family == PBPF_FAMILY_IPV4) {
        inet_ntop(AF_INET, addr, buf, sizeof buf);
    } else if (family == PBPF_FAMILY_IPV6) {
        inet_ntop(AF_INET6, addr, buf, sizeof buf);
    } else {
        return "?";
    }
    return buf;
}

std::string proto_text(uint8_t proto) {
    switch (proto) {
        case IPPROTO_TCP:
            return "tcp";
        case IPPROTO_UDP:
            return "udp";
        case IPPROTO_ICMP:
            return "icmp";
        case IPPROTO_ICMPV6:
            return "icmpv6";
        default:
            return std::to_string(proto);
    }
}

const char* state_text(uint8_t s) {
    switch (s) {
        case PBPF_CT_NEW:
            return "new";
        case PBPF_CT_ESTABLISHED:
            return "established";
        case PBPF_CT_CLOSING:
            return "closing";
        case PBPF_CT_CLOSED:
            return "closed";
        default:
            return "?";
    }
}

const char* dir_text(uint8_t d) { return d == PBPF_DIR_EGRESS ? "egress" : "ingress"; }

uint64_t timeout_s(const pbpf_ct_key& k, const pbpf_ct_value& v) {
    return pbpf_ct_timeout_s(k.proto, v.state);
}

bool expired(const pbpf_ct_key& k, const pbpf_ct_value& v, uint64_t now) {
    return now > v.last_seen_ns && now - v.last_seen_ns > timeout_s(k, v) * 1000000000ull;
}

bool has_ports(uint8_t proto) { return proto == IPPROTO_TCP || proto == IPPROTO_UDP; }

// Every entry of the conntrack map; `fn(key, value)` returns false to stop.
template <typename Fn>
Result<void> for_each_flow(int fd, Fn fn) {
    pbpf_ct_key prev{}, next{};
    bool first = true;
    while (bpf_map_get_next_key(fd, first ? nullptr : &prev, &next) == 0) {
        first = false;
        prev = next;
        pbpf_ct_value v{};
        if (bpf_map_lookup_elem(fd, &next, &v) != 0) {
            if (errno == ENOENT) continue;  // evicted meanwhile
            return sys_error("read pbpf_conntrack");
        }
        if (!fn(next, v)) break;
    }
    return {};
}

std::string workload_text(uint64_t workload, uint32_t ifindex, Names& names) {
    if (ifindex != 0) return names.interface(workload, ifindex);
    return names.cgroup(workload);
}

// A workload bound or unbound: who did it (the API, a rule, the workload's removal).
json binding_event_json(const pbpf_flow_event& e, uint64_t seq, int64_t wall_offset_ns,
                        Names& names) {
    const char* trigger = "?";
    switch (e.reason) {
        case PBPF_BIND_API:
            trigger = "api";
            break;
        case PBPF_BIND_RULE:
            trigger = "rule";
            break;
        case PBPF_BIND_FAIL_CLOSED:
            trigger = "fail-closed";
            break;
        case PBPF_BIND_GONE:
            trigger = "workload-gone";
            break;
        case PBPF_BIND_PERSONA_REMOVED:
            trigger = "persona-removed";
            break;
    }
    json j = {{"seq", seq},
              {"type", e.verdict == PBPF_EV_BIND ? "bind" : "unbind"},
              {"time_ns", static_cast<int64_t>(e.ts_ns) + wall_offset_ns},
              {"workload", workload_text(e.workload, e.ifindex, names)},
              {"persona", names.persona(e.persona_id)},
              {"trigger", trigger}};
    if (e.rule_id != 0) {
        j["rule"] = e.rule_id;
        j["rule_text"] = names.bind_rule(e.rule_id);
    }
    if (e.ifindex != 0) j["ifindex"] = e.ifindex;
    return j;
}

}  // namespace

int64_t wall_clock_offset_ns() {
    timespec rt{}, mono{};
    clock_gettime(CLOCK_REALTIME, &rt);
    clock_gettime(CLOCK_MONOTONIC, &mono);
    return (static_cast<int64_t>(rt.tv_sec) - mono.tv_sec) * 1000000000ll +
           (static_cast<int64_t>(rt.tv_nsec) - mono.tv_nsec);
}

void Names::refresh() {
    if (auto recs = store_.personas()) {
        // Names of removed personas stay (until their id is reused): their last events
        // still name them.
        rules_.clear();
        for (const auto& r : *recs) {
            personas_[r.id] = r.name;
            try {
                rules_[r.id] = json::parse(r.rules_json).get<std::vector<std::string>>();
            } catch (const std::exception&) {
                rules_[r.id].clear();
            }
        }
    }
    if (auto binds = store_.bindings()) {
        for (const auto& b : *binds) cgroups_[b.cgroup_id] = b.cgroup_path;
    }
    if (auto binds = store_.if_bindings()) {
        for (const auto& b : *binds)
            interfaces_[{b.netns_cookie, b.ifindex}] =
                "if:" + b.ifname + (b.netns.empty() ? "" : "@" + b.netns);
    }
    if (auto rules = store_.bind_rules()) {
        for (const auto& r : *rules)
            bind_rules_[r.id] = std::string(to_string(r.kind)) + " \"" + r.pattern + "\"";
    }
}

std::string Names::bind_rule(int64_t id) const {
    auto it = bind_rules_.find(id);
    return it == bind_rules_.end() ? "" : it->second;
}

std::string Names::interface(uint64_t netns_cookie, uint32_t ifindex) const {
    auto it = interfaces_.find({netns_cookie, ifindex});
    return it == interfaces_.end() ? "if:" + std::to_string(ifindex) : it->second;
}

std::string Names::persona(uint32_t id) const {
    if (id == PBPF_PERSONA_FAIL_CLOSED) return "(fail-closed)";
    auto it = personas_.find(id);
    return it == personas_.end() ? "#" + std::to_string(id) : it->second;
}

std::string Names::rule(uint32_t persona_id, uint32_t rule_id) const {
    auto it = rules_.find(persona_id);
    if (it == rules_.end() || rule_id == 0 || rule_id > it->second.size()) return "";
    return it->second[rule_id - 1];
}

std::optional<uint32_t> Names::persona_id(const std::string& name) const {
    for (const auto& [id, n] : personas_)
        if (n == name) return id;
    return std::nullopt;
}

std::string Names::cgroup(uint64_t id) {
    if (auto it = cgroups_.find(id); it != cgroups_.end()) return it->second;
    // A cgroup that is gone stays gone: walk for it at most once a minute.
    const auto now = std::chrono::steady_clock::now();
    if (auto it = misses_.find(id);
        it != misses_.end() && now - it->second < std::chrono::minutes(1))
        return "cgroup:" + std::to_string(id);
    // The cgroup id is the directory's inode number on cgroup2.
    namespace fs = std::filesystem;
    std::error_code ec;
    const fs::path root = tree_.root().fs_path;
    struct stat st {};
    auto rel = [&](const fs::path& p) {
        std::string r = tree_.root().rel_path;
        std::string sub = fs::relative(p, root, ec).string();
        if (sub == "." || sub.empty()) return r;
        return (r == "/" ? "" : r) + "/" + sub;
    };
    if (::stat(root.c_str(), &st) == 0 && st.st_ino == id) return cgroups_[id] = rel(root);
    size_t seen = 0;
    for (fs::recursive_directory_iterator
             it(root, fs::directory_options::skip_permission_denied, ec),
         end;
         it != end && seen < 100000; it.increment(ec), ++seen) {
        if (ec) break;
        if (!it->is_directory(ec)) continue;
        if (::stat(it->path().c_str(), &st) == 0 && st.st_ino == id)
            return cgroups_[id] = rel(it->path());
    }
    if (misses_.size() > 10000) misses_.clear();
    misses_[id] = now;
    return "cgroup:" + std::to_string(id);
}

json flow_json(const pbpf_ct_key& k, const pbpf_ct_value& v, uint64_t now_ns, Names& names) {
    json j = {
        {"workload", workload_text(k.workload, k.ifindex, names)},
        {"persona", names.persona(v.persona_id)},
        {"family", k.family == PBPF_FAMILY_IPV4 ? "ipv4" : "ipv6"},
        {"proto", proto_text(k.proto)},
        {"local", addr_text(k.family, k.local)},
        {"remote", addr_text(k.family, k.remote)},
        {"origin", dir_text(v.origin)},
        {"state", state_text(v.state)},
        {"verdict", (v.flags & PBPF_CT_F_AUDIT) ? "audit" : "allow"},
        {"rule", v.rule_id},
        {"packets",
         {{"egress", v.packets[PBPF_DIR_EGRESS]}, {"ingress", v.packets[PBPF_DIR_INGRESS]}}},
        {"bytes", {{"egress", v.bytes[PBPF_DIR_EGRESS]}, {"ingress", v.bytes[PBPF_DIR_INGRESS]}}}};
    if (v.rule_id != 0) j["rule_text"] = names.rule(v.persona_id, v.rule_id);
    if (k.ifindex != 0) j["ifindex"] = k.ifindex;
    if (has_ports(k.proto)) {
        j["local_port"] = ntohs(k.local_port);
        j["remote_port"] = ntohs(k.remote_port);
    } else if (k.local_port != 0) {
        j["icmp_id"] = ntohs(k.local_port);
    }
    uint64_t age = now_ns > v.created_ns ? now_ns - v.created_ns : 0;
    uint64_t idle = now_ns > v.last_seen_ns ? now_ns - v.last_seen_ns : 0;
    uint64_t ttl = timeout_s(k, v) * 1000000000ull;
    j["age_s"] = age / 1000000000ull;
    j["expires_in_s"] = idle >= ttl ? 0 : (ttl - idle + 999999999ull) / 1000000000ull;
    return j;
}

json event_json(const pbpf_flow_event& e, uint64_t seq, int64_t wall_offset_ns, Names& names,
                const RttStatusChange* latency) {
    if (e.verdict == PBPF_EV_BIND || e.verdict == PBPF_EV_UNBIND)
        return binding_event_json(e, seq, wall_offset_ns, names);
    if (e.verdict == PBPF_EV_LATENCY) {
        json j = {{"seq", seq},
                  {"type", "latency"},
                  {"time_ns", static_cast<int64_t>(e.ts_ns) + wall_offset_ns},
                  {"persona", names.persona(e.persona_id)},
                  {"status", rtt_status_name(static_cast<RttStatus>(e.reason))}};
        // A binding's status names the binding as bind events do; the persona's (the sum
        // of its bindings) has no workload.
        if (e.workload != 0) {
            j["scope"] = "binding";
            j["workload"] = workload_text(e.workload, e.ifindex, names);
        } else {
            j["scope"] = "persona";
        }
        if (latency) {
            RttView v;
            v.target_ns = latency->target_ns;
            v.window_samples = latency->samples;
            v.p50_us = latency->p50_us;
            v.p99_us = latency->p99_us;
            v.status = latency->status;
            j["previous"] = rtt_status_name(latency->previous);
            j["rtt"] = rtt_json(v);
        }
        return j;
    }
    const char* verdict = e.verdict == PBPF_EV_ALLOWED ? "allowed"
                          : e.verdict == PBPF_EV_AUDIT ? "audit"
                                                       : "dropped";
    const std::string reason = drop_reason_name(e.reason);
    int64_t wall = static_cast<int64_t>(e.ts_ns) + wall_offset_ns;
    json j = {{"seq", seq},
              {"type", "flow"},
              {"time_ns", wall},
              {"workload", workload_text(e.workload, e.ifindex, names)},
              {"persona", names.persona(e.persona_id)},
              {"direction", dir_text(e.dir)},
              {"verdict", verdict},
              {"reason", reason},
              {"mode", (e.flags & PBPF_EV_F_AUDIT) ? "audit" : "enforce"},
              {"family", e.family == PBPF_FAMILY_IPV4 ? "ipv4" : "ipv6"},
              {"proto", proto_text(e.proto)},
              {"src", addr_text(e.family, e.saddr)},
              {"dst", addr_text(e.family, e.daddr)},
              {"len", e.len}};
    if (e.reason == PBPF_REASON_RULE || e.rule_id != 0) {
        j["rule"] = e.rule_id;
        j["rule_text"] = names.rule(e.persona_id, e.rule_id);
    }
    if (e.ifindex != 0) j["ifindex"] = e.ifindex;
    // Sovereignty: the remote's country ("unknown": no geo data for it).
    if (e.reason == PBPF_REASON_SOVEREIGNTY) {
        const bool known = e.country[0] >= 'A' && e.country[0] <= 'Z' && e.country[1] >= 'A' &&
                           e.country[1] <= 'Z';
        j["country"] =
            known ? std::string{static_cast<char>(e.country[0]), static_cast<char>(e.country[1])}
                  : std::string("unknown");
    }
    if (has_ports(e.proto)) {
        j["src_port"] = ntohs(e.sport);
        j["dst_port"] = ntohs(e.dport);
    } else if (e.proto == IPPROTO_ICMP || e.proto == IPPROTO_ICMPV6) {
        j["icmp_type"] = ntohs(e.sport);
        j["icmp_code"] = ntohs(e.dport);
    }
    if (e.proto == IPPROTO_TCP) {
        std::string flags;
        if (e.tcp_flags & 0x02) flags += "SYN,";
        if (e.tcp_flags & 0x10) flags += "ACK,";
        if (e.tcp_flags & 0x01) flags += "FIN,";
        if (e.tcp_flags & 0x04) flags += "RST,";
        if (e.tcp_flags & 0x08) flags += "PSH,";
        if (!flags.empty()) flags.pop_back();
        j["tcp_flags"] = flags;
    }
    return j;
}

// Conntrack ------------------------------------------------------------------------------

std::optional<uint32_t> ConntrackTable::persona_filter(const std::optional<std::string>& persona) {
    names_.refresh();
    if (!persona) return std::nullopt;
    auto id = names_.persona_id(*persona);
    if (!id) throw ApiError(404, "no persona '" + *persona + "'");
    return id;
}

json ConntrackTable::list(const std::optional<std::string>& persona, size_t limit) {
    auto want = persona_filter(persona);
    const uint64_t now = monotonic_ns();
    json flows = json::array();
    size_t total = 0;
    auto r =
        for_each_flow(loader_.conntrack_fd(), [&](const pbpf_ct_key& k, const pbpf_ct_value& v) {
            if (expired(k, v, now)) return true;
            if (want && v.persona_id != *want) return true;
            ++total;
            if (flows.size() < limit) flows.push_back(flow_json(k, v, now, names_));
            return true;
        });
    if (!r) throw ApiError(500, r.error().what());
    return {{"flows", flows},
            {"total", total},
            {"truncated", total > flows.size()},
            {"capacity", loader_.limits().conntrack_entries}};
}

json ConntrackTable::flush(const std::optional<std::string>& persona) {
    auto want = persona_filter(persona);
    std::vector<pbpf_ct_key> doomed;
    auto r =
        for_each_flow(loader_.conntrack_fd(), [&](const pbpf_ct_key& k, const pbpf_ct_value& v) {
            if (!want || v.persona_id == *want) doomed.push_back(k);
            return true;
        });
    if (!r) throw ApiError(500, r.error().what());
    size_t removed = 0;
    for (const auto& k : doomed) {
        if (bpf_map_delete_elem(loader_.conntrack_fd(), &k) == 0) {
            ++removed;
        } else if (errno != ENOENT) {
            throw ApiError(500, std::string("delete from pbpf_conntrack: ") + std::strerror(errno));
        }
    }
    spdlog::info("conntrack flush{}: {} flows removed",
                 persona ? " of persona '" + *persona + "'" : std::string(), removed);
    return {{"flushed", removed}};
}

// Events ---------------------------------------------------------------------------------

EventStream::EventStream(Loader& loader, size_t history)
    : loader_(loader), capacity_(history == 0 ? 1 : history) {}

EventStream::~EventStream() { stop(); }

void EventStream::push(const pbpf_flow_event& e, const RttStatusChange* latency) {
    {
        std::lock_guard<std::mutex> lock(mu_);
        if (latency) latency_[first_seq_ + history_.size()] = *latency;
        history_.push_back(e);
        ++received_;
        if (history_.size() > capacity_) {
            history_.pop_front();
            latency_.erase(first_seq_);
            ++first_seq_;
        }
    }
    arrived_.notify_all();
}

void EventStream::publish_binding(uint8_t verdict, uint8_t trigger, uint64_t workload,
                                  uint32_t ifindex, uint32_t persona_id, int64_t rule_id) {
    pbpf_flow_event e{};
    e.ts_ns = monotonic_ns();
    e.workload = workload;
    e.ifindex = ifindex;
    e.persona_id = persona_id;
    e.rule_id = static_cast<uint32_t>(rule_id);
    e.verdict = verdict;
    e.reason = trigger;
    if (ifindex != 0) e.flags = PBPF_EV_F_INTERFACE;
    push(e);
}

void EventStream::publish_latency(const RttStatusChange& change) {
    pbpf_flow_event e{};
    e.ts_ns = monotonic_ns();
    e.persona_id = change.persona_id;
    if (change.slot) e.workload = change.workload;  // a cgroup binding's status
    e.verdict = PBPF_EV_LATENCY;
    e.reason = static_cast<uint8_t>(change.status);
    push(e, &change);
}

int EventStream::on_event(void* ctx, void* data, size_t size) {
    if (size < sizeof(pbpf_flow_event)) return 0;
    pbpf_flow_event e;
    std::memcpy(&e, data, sizeof e);
    static_cast<EventStream*>(ctx)->push(e);
    return 0;
}

Result<void> EventStream::start() {
    ring_ = ring_buffer__new(loader_.events_fd(), &EventStream::on_event, this, nullptr);
    if (ring_ == nullptr) return sys_error("open the pbpf_events ring buffer");
    thread_ = std::thread([this] { run(); });
    return {};
}

void EventStream::run() {
    for (;;) {
        {
            std::lock_guard<std::mutex> lock(mu_);
            if (stopping_) return;
        }
        int n = ring_buffer__poll(ring_, 100);
        if (n < 0 && n != -EINTR) {
            spdlog::error("flow events: ring buffer poll failed: {}", std::strerror(-n));
            return;
        }
    }
}

void EventStream::stop() {
    {
        std::lock_guard<std::mutex> lock(mu_);
        stopping_ = true;
    }
    arrived_.notify_all();
    if (thread_.joinable()) thread_.join();
    if (ring_) ring_buffer__free(ring_);
    ring_ = nullptr;
}

EventStream::Batch EventStream::read(uint64_t since, std::optional<uint32_t> persona, size_t limit,
                                     bool tail, int wait_ms) {
    std::unique_lock<std::mutex> lock(mu_);
    uint64_t from = since == 0 ? first_seq_ : since;
    // Scans each event once however often the waiter wakes (the reader thread needs mu_).
    uint64_t scanned = from;
    auto arrived = [&] {
        const uint64_t end = first_seq_ + history_.size();
        for (uint64_t s = std::max(scanned, first_seq_); s < end; ++s)
            if (!persona || history_[s - first_seq_].persona_id == *persona) return true;
        scanned = end;
        return false;
    };
    // A few followers may wait; more would tie up the API's worker threads.
    if (wait_ms > 0 && waiting_ < kMaxWaiters && !arrived()) {
        ++waiting_;
        arrived_.wait_for(lock, std::chrono::milliseconds(wait_ms),
                          [&] { return stopping_ || arrived(); });
        --waiting_;
    }
    Batch b;
    if (from < first_seq_) b.overwritten = first_seq_ - from;
    const uint64_t end = first_seq_ + history_.size();
    for (uint64_t s = std::max(from, first_seq_); s < end; ++s) {
        const auto& e = history_[s - first_seq_];
        if (persona && e.persona_id != *persona) continue;
        b.events.emplace_back(s, e);
        if (!tail && b.events.size() >= limit) break;
    }
    if (tail && b.events.size() > limit)
        b.events.erase(b.events.begin(), b.events.end() - static_cast<long>(limit));
    for (const auto& [seq, e] : b.events)
        if (auto it = latency_.find(seq); it != latency_.end()) b.latency[seq] = it->second;
    // A batch cut at `limit` continues after its last event; otherwise after everything.
    b.next = !tail && b.events.size() >= limit ? b.events.back().first + 1 : end;
    return b;
}

namespace {

std::optional<std::string> param(const httplib::Request& req, const char* key) {
    if (!req.has_param(key)) return std::nullopt;
    return req.get_param_value(key);
}

// A query parameter as an unsigned number in [lo, hi], or `def` when absent.
uint64_t number_param(const httplib::Request& req, const char* key, uint64_t def, uint64_t lo,
                      uint64_t hi) {
    auto v = param(req, key);
    if (!v) return def;
    uint64_t n = 0;
    bool ok = !v->empty() && v->size() <= 19;
    for (char c : *v) ok = ok && c >= '0' && c <= '9';
    if (ok) n = std::stoull(*v);
    if (!ok || n < lo || n > hi)
        throw ApiError(400, std::string("query parameter ") + key + "=" + *v +
                                ": expected a number from " + std::to_string(lo) + " to " +
                                std::to_string(hi));
    return n;
}

}  // namespace

void add_flow_routes(ApiServer& server, ConntrackTable& conntrack, EventStream& events,
                     Names& names) {
    server.add_route("GET", "/v1/conntrack", [&conntrack](const httplib::Request& req) {
        return conntrack.list(param(req, "persona"),
                              number_param(req, "limit", 10000, 1, 10000000));
    });
    server.add_route(
        "DELETE", "/v1/conntrack",
        [&conntrack](const httplib::Request& req) {
            if (auto p = param(req, "persona")) audit_note(*p);
            return conntrack.flush(param(req, "persona"));
        },
        true, "conntrack-flush");
    // Unlocked: a follower waits here without holding up other requests; names are
    // resolved under the API mutex.
    server.add_route(
        "GET", "/v1/events",
        [&server, &events, &names](const httplib::Request& req) {
            const uint64_t since = number_param(req, "since", 0, 0, UINT64_MAX >> 1);
            const size_t limit = number_param(req, "limit", 1000, 1, 100000);
            const int wait_ms = static_cast<int>(number_param(req, "wait_ms", 0, 0, 60000));
            auto tail_text = param(req, "tail");
            if (tail_text && *tail_text != "0" && *tail_text != "1" && *tail_text != "true" &&
                *tail_text != "false")
                throw ApiError(400, "query parameter tail=" + *tail_text + ": expected 1 or 0");
            const bool tail = tail_text && (*tail_text == "1" || *tail_text == "true");
            std::optional<uint32_t> persona;
            if (auto name = param(req, "persona")) {
                std::lock_guard<std::mutex> lock(server.mutex());
                names.refresh();
                persona = names.persona_id(*name);
                if (!persona) throw ApiError(404, "no persona '" + *name + "'");
            }
            auto batch = events.read(since, persona, limit, tail, wait_ms);
            json list = json::array();
            const int64_t offset = wall_clock_offset_ns();
            {
                std::lock_guard<std::mutex> lock(server.mutex());
                names.refresh();
                for (const auto& [seq, e] : batch.events) {
                    auto it = batch.latency.find(seq);
                    list.push_back(event_json(e, seq, offset, names,
                                              it == batch.latency.end() ? nullptr : &it->second));
                }
            }
            return json{{"events", list},
                        {"next", batch.next},
                        {"overwritten", batch.overwritten},
                        {"kernel", events.kernel_counters()}};
        },
        false);
}

json EventStream::kernel_counters() const {
    int ncpu = libbpf_num_possible_cpus();
    json j = {{"emitted", 0}, {"rate_limited", 0}, {"ring_full", 0}};
    if (ncpu <= 0) return j;
    std::vector<pbpf_event_state> per(static_cast<size_t>(ncpu));
    __u32 zero = 0;
    if (bpf_map_lookup_elem(loader_.event_state_fd(), &zero, per.data()) != 0) return j;
    uint64_t emitted = 0, limited = 0, full = 0;
    for (const auto& s : per) {
        emitted += s.emitted;
        limited += s.rate_limited;
        full += s.ring_full;
    }
    j["emitted"] = emitted;
    j["rate_limited"] = limited;
    j["ring_full"] = full;
    std::lock_guard<std::mutex> lock(mu_);
    j["received"] = received_;
    return j;
}

}  // namespace pbpf::agent
