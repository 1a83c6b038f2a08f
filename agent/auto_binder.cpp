// Automatic binding: rules and watchers (see auto_binder.h).
#include "agent/auto_binder.h"

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <ctime>

#include <spdlog/spdlog.h>

#include <httplib.h>

#include "agent/api_error.h"
#include "agent/api_server.h"
#include "maps/abi/events.h"

namespace pbpf::agent {
namespace {

using nlohmann::json;

constexpr int kMaxWalkDepth = 64;

json rule_json(const BindRule& r) {
    return {{"id", r.id},
            {"persona", r.persona},
            {"kind", std::string(to_string(r.kind))},
            {"pattern", r.pattern},
            {"origin", r.origin},
            {"created_by", r.created_by},
            {"created_at", r.created_at}};
}

std::string str_field(const json& body, const char* key, bool required) {
    if (!body.contains(key)) {
        if (required) throw ApiError(400, std::string("request needs \"") + key + "\"");
        return "";
    }
    if (!body[key].is_string())
        throw ApiError(400, std::string("\"") + key + "\" must be a string");
    return body[key].get<std::string>();
}

// Subdirectories of a cgroup directory (its control files are regular files).
std::vector<std::string> subdirs(const std::string& dir) {
    std::vector<std::string> out;
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) return out;
    while (dirent* e = ::readdir(d)) {
        std::string name = e->d_name;
        if (name == "." || name == "..") continue;
        if (e->d_type == DT_DIR) {
            out.push_back(name);
        } else if (e->d_type == DT_UNKNOWN) {
            struct stat st {};
            if (::stat((dir + "/" + name).c_str(), &st) == 0 && S_ISDIR(st.st_mode))
                out.push_back(name);
        }
    }
    ::closedir(d);
    std::sort(out.begin(), out.end());
    return out;
}

CgroupRef child_of(const CgroupRef& parent, const std::string& name) {
    return {parent.fs_path + "/" + name,
            (parent.rel_path == "/" ? "" : parent.rel_path) + "/" + name};
}

// Watcher callbacks run on the watchers' threads: nothing may escape them (it would end
// the agent); a failure is logged and counted, and the next event or change retries.
template <typename F>
void guarded(const char* what, std::atomic<uint64_t>& errors, F&& f) {
    try {
        f();
    } catch (const std::exception& e) {
        ++errors;
        spdlog::error("{}: {}", what, e.what());
    } catch (...) {
        ++errors;
        spdlog::error("{}: unknown error", what);
    }
}

}  // namespace

AutoBinder::~AutoBinder() { stop(); }

Result<void> AutoBinder::set_fail_closed(const std::vector<std::string>& paths) {
    std::vector<std::string> rels;
    for (const auto& p : paths) {
        auto ref = tree_.resolve(p);
        if (!ref) return Error{EINVAL, "[binding] fail_closed: " + p + ": " + ref.error().message};
        rels.push_back(ref->rel_path);
    }
    fail_closed_paths_ = std::move(rels);
    std::set<uint64_t> ids;
    for (const auto& rel : fail_closed_paths_) {
        auto ref = tree_.resolve(rel);
        if (!ref) continue;
        if (auto id = cgroup_id_of(ref->fs_path)) {
            ids.insert(*id);
        } else {
            spdlog::warn("fail-closed subtree {} does not exist yet; protected once it appears",
                         rel);
        }
    }
    return binder_.set_fail_closed(ids);
}

void AutoBinder::update_fail_closed() {
    if (fail_closed_paths_.empty()) return;
    std::set<uint64_t> ids;
    for (const auto& rel : fail_closed_paths_) {
        auto ref = tree_.resolve(rel);
        if (!ref) continue;
        if (auto id = cgroup_id_of(ref->fs_path)) ids.insert(*id);
    }
    if (auto r = binder_.set_fail_closed(ids); !r) {
        ++errors_;
        spdlog::error("fail-closed roots: {}", r.error().what());
    }
}

Result<void> AutoBinder::start(bool watch_interfaces) {
    {
        std::lock_guard<std::mutex> lock(mu_);
        refresh_rules();
    }
    CgroupWatcher::Callbacks cc;
    cc.created = [this](const std::string& rel) {
        guarded("new cgroup", errors_, [&] { enqueue(true, rel); });
    };
    cc.removed = [this](const std::string& rel) {
        guarded("removed cgroup", errors_, [&] { enqueue(false, rel); });
    };
    cc.overflow = [this]() {
        guarded("cgroup event overflow", errors_, [&] {
            std::lock_guard<std::mutex> lock(mu_);
            spdlog::warn("cgroup events were lost (inotify queue overflow); evaluating all");
            reevaluate();
        });
    };
    worker_ = std::thread([this] { run_worker(); });
    auto cw = CgroupWatcher::start(tree_, std::move(cc));
    if (!cw) return cw.error();
    cgroups_ = std::move(*cw);
    if (watch_interfaces) {
        LinkWatcher::Callbacks lc;
        lc.added = [this](const LinkInfo& l) {
            guarded("new interface", errors_, [&] { on_link_added(l); });
        };
        lc.removed = [this](const LinkInfo& l) {
            guarded("removed interface", errors_, [&] { on_link_removed(l); });
        };
        lc.overflow = [this]() {
            guarded("interface event overflow", errors_, [&] {
                std::lock_guard<std::mutex> lock(mu_);
                spdlog::warn("interface events were lost (netlink overflow); evaluating all");
                reevaluate();
            });
        };
        auto lw = LinkWatcher::start(std::move(lc));
        if (!lw) return lw.error();
        links_ = std::move(*lw);
    }
    std::lock_guard<std::mutex> lock(mu_);
    reevaluate();
    return {};
}

void AutoBinder::stop() {
    if (cgroups_) cgroups_->stop();
    if (links_) links_->stop();
    {
        std::lock_guard<std::mutex> lock(q_mu_);
        q_stop_ = true;
    }
    q_cv_.notify_one();
    if (worker_.joinable()) worker_.join();
}

void AutoBinder::refresh_rules() {
    explicit_.clear();
    rules_.clear();
    auto all = store_.bind_rules();
    if (!all) {
        ++errors_;
        spdlog::error("read binding rules: {}", all.error().what());
        return;
    }
    for (auto& r : *all) (r.origin == "bind" ? explicit_ : rules_).push_back(std::move(r));
    cgroup_rules_.clear();
    for (const auto& r : rules_)
        if (r.kind == RuleKind::Cgroup) cgroup_rules_.push_back(r);
}

bool AutoBinder::is_explicit(const BindingRecord& b) const {
    if (b.origin == "api") return true;
    return std::any_of(explicit_.begin(), explicit_.end(),
                       [&](const BindRule& r) { return r.id == b.rule_id; });
}

bool AutoBinder::explicit_above(const std::string& rel) {
    const std::string& root = tree_.root().rel_path;
    std::string p = rel;
    while (p != root && p.size() > 1) {
        size_t slash = p.rfind('/');
        p = slash == 0 ? "/" : p.substr(0, slash);
        if (batch_explicit_.count(p)) return true;
        auto b = store_.binding_by_path(p);
        if (b && *b && is_explicit(**b)) return true;
        if (p.size() <= root.size()) break;
    }
    return false;
}

// logind's user slices are root's and sit in user.slice; a user-UID.slice that a user
// made in a cgroup delegated to them must not carry another user's persona.
bool AutoBinder::trusted_user_slice(const CgroupRef& ref) const {
    const std::string& rel = ref.rel_path;
    size_t slash = rel.rfind('/');
    if (slash == std::string::npos || slash == 0) return false;
    size_t prev = rel.rfind('/', slash - 1);
    if (rel.substr(prev + 1, slash - prev - 1) != "user.slice") return false;
    struct stat st {};
    return ::stat(ref.fs_path.c_str(), &st) == 0 && st.st_uid == 0;
}

bool AutoBinder::evaluate_cgroup(const CgroupRef& ref, std::optional<bool> covered) {
    auto id = cgroup_id_of(ref.fs_path);
    if (!id) return false;  // gone already
    Result<std::optional<BindingRecord>> current = std::optional<BindingRecord>();
    if (walk_bindings_ != nullptr) {  // a full walk read them all at once
        if (auto it = walk_bindings_->find(*id); it != walk_bindings_->end())
            current = std::optional<BindingRecord>(it->second);
    } else {
        current = store_.binding(*id);
    }
    if (!current) {
        ++errors_;
        spdlog::error("read binding of {}: {}", ref.rel_path, current.error().what());
        return false;
    }
    if (*current && (*current)->origin == "api") return true;  // explicit: never overridden
    // Below an explicit binding only explicit user bindings apply: the rules do not
    // reach into a workload someone bound by hand.
    if (!covered) covered = explicit_above(ref.rel_path);
    const bool user_ok = !user_slice_uid(ref.rel_path) || trusted_user_slice(ref);
    std::optional<RuleMatch> m;
    if (user_ok) m = best_cgroup_rule(explicit_, ref.rel_path, users_);
    if (!m && !*covered)
        m = best_cgroup_rule(user_ok ? rules_ : cgroup_rules_, ref.rel_path, users_);
    try {
        if (m) {
            const BindRule& r = *m->rule;
            if (*current && (*current)->rule_id == r.id && (*current)->persona == r.persona)
                return r.origin == "bind";
            if (batch_ != nullptr) {  // the worker binds its new cgroups together
                const bool queued =
                    std::any_of(batch_->begin(), batch_->end(),
                                [&](const Binder::BindIntent& t) { return t.cgroup_id == *id; });
                if (!queued) batch_->push_back({ref, *id, r.persona, "rule", r.id});
                if (r.origin == "bind") batch_explicit_.insert(ref.rel_path);
                return r.origin == "bind";
            }
            binder_.bind_cgroup(ref, *id, r.persona, "rule", r.id);
            ++bound_by_rule_;
            return r.origin == "bind";
        }
        if (*current) {
            binder_.unbind_record(**current, PBPF_BIND_RULE);
            ++unbound_by_rule_;
        }
    } catch (const std::exception& e) {
        ++errors_;
        spdlog::warn("automatic binding of {} failed: {}", ref.rel_path, e.what());
    }
    return false;
}

void AutoBinder::evaluate_interface(const LinkInfo& link) {
    if (link.ifname == "lo") return;  // never a workload's
    auto current = store_.if_binding("", link.ifname);
    if (!current) {
        ++errors_;
        spdlog::error("read binding of {}: {}", link.ifname, current.error().what());
        return;
    }
    if (*current && (*current)->origin == "api") return;
    auto m = best_interface_rule(rules_, link.ifname);
    try {
        if (m) {
            const BindRule& r = *m->rule;
            if (*current && (*current)->rule_id == r.id && (*current)->persona == r.persona &&
                (*current)->ifindex == link.ifindex)
                return;
            if_binder_.bind_as(r.persona, link.ifname, "", "rule", r.id);
            ++bound_by_rule_;
        } else if (*current) {
            if_binder_.unbind_record(**current, PBPF_BIND_RULE);
            ++unbound_by_rule_;
        }
    } catch (const std::exception& e) {
        ++errors_;
        spdlog::warn("automatic binding of interface {} failed: {}", link.ifname, e.what());
    }
}

void AutoBinder::walk(const CgroupRef& ref, int depth, bool covered) {
    covered = evaluate_cgroup(ref, covered) || covered;
    if (depth >= kMaxWalkDepth) return;
    for (const auto& name : subdirs(ref.fs_path)) walk(child_of(ref, name), depth + 1, covered);
}

void AutoBinder::reevaluate() {
    refresh_rules();
    update_fail_closed();
    // Bindings whose workload is gone (events lost, or removed while nobody watched).
    if (auto binds = store_.bindings()) {
        for (const auto& b : *binds) {
            auto ref = tree_.resolve(b.cgroup_path);
            auto id = ref ? cgroup_id_of(ref->fs_path) : Result<uint64_t>(ref.error());
            if (id && *id == b.cgroup_id) continue;
            try {
                binder_.unbind_record(b, PBPF_BIND_GONE);
                ++gone_;
            } catch (const std::exception& e) {
                ++errors_;
                spdlog::warn("unbind {}: {}", b.cgroup_path, e.what());
            }
        }
    }
    // One read of every binding instead of a query per cgroup: a walk evaluates each
    // cgroup once, so the snapshot is current for every cgroup when it is evaluated.
    if (auto all = store_.bindings()) {
        std::unordered_map<uint64_t, BindingRecord> by_id;
        for (auto& b : *all) by_id.emplace(b.cgroup_id, std::move(b));
        walk_bindings_ = &by_id;
        walk(tree_.root(), 0, explicit_above(tree_.root().rel_path));
        walk_bindings_ = nullptr;
    } else {
        ++errors_;
        spdlog::error("read bindings: {}", all.error().what());
    }
    if (!links_) return;
    auto links = LinkWatcher::list_links();
    if (!links) {
        ++errors_;
        spdlog::warn("list interfaces: {}", links.error().what());
        return;
    }
    if (auto ifb = store_.if_bindings()) {
        for (const auto& b : *ifb) {
            if (!b.netns.empty()) continue;
            bool present = std::any_of(links->begin(), links->end(), [&](const LinkInfo& l) {
                return l.ifname == b.ifname && l.ifindex == b.ifindex;
            });
            if (present || b.origin != "rule") continue;
            try {
                if_binder_.unbind_record(b, PBPF_BIND_GONE);
                ++gone_;
            } catch (const std::exception& e) {
                ++errors_;
                spdlog::warn("unbind interface {}: {}", b.ifname, e.what());
            }
        }
    }
    for (const auto& l : *links) evaluate_interface(l);
}

void AutoBinder::enqueue(bool created, const std::string& rel) {
    {
        std::lock_guard<std::mutex> lock(q_mu_);
        queue_.emplace_back(created, rel);
    }
    q_cv_.notify_one();
}

// The binding worker: takes every queued cgroup event at once and handles them in order
// under the API mutex, the bindings of consecutive new cgroups in one batch (kernel
// entries first, one store transaction): a burst of new workloads is bound in one pass
// instead of a transaction each.
void AutoBinder::run_worker() {
    for (;;) {
        std::deque<std::pair<bool, std::string>> events;
        {
            std::unique_lock<std::mutex> lock(q_mu_);
            q_cv_.wait(lock, [&] { return q_stop_ || !queue_.empty(); });
            if (queue_.empty()) return;  // stopping, nothing left
            events.swap(queue_);
        }
        guarded("cgroup events", errors_, [&] {
            std::lock_guard<std::mutex> lock(mu_);
            std::vector<Binder::BindIntent> batch;
            batch_ = &batch;
            for (const auto& [created, rel] : events) {
                if (created) {
                    on_created(rel);
                } else {
                    flush_batch();
                    on_removed(rel);
                }
            }
            flush_batch();
            batch_ = nullptr;
        });
    }
}

void AutoBinder::flush_batch() {
    if (batch_ == nullptr || batch_->empty()) return;
    std::vector<Binder::BindIntent> todo;
    todo.swap(*batch_);
    batch_explicit_.clear();
    try {
        binder_.bind_many(todo);
        bound_by_rule_ += todo.size();
        return;
    } catch (const std::exception& e) {
        spdlog::warn("binding {} new cgroups at once failed ({}); one at a time", todo.size(),
                     e.what());
    }
    for (const auto& t : todo) {
        try {
            binder_.bind_cgroup(t.ref, t.cgroup_id, t.persona, t.origin, t.rule_id);
            ++bound_by_rule_;
        } catch (const std::exception& e) {
            ++errors_;
            spdlog::warn("automatic binding of {} failed: {}", t.ref.rel_path, e.what());
        }
    }
}

void AutoBinder::on_created(const std::string& rel) {
    if (std::find(fail_closed_paths_.begin(), fail_closed_paths_.end(), rel) !=
        fail_closed_paths_.end())
        update_fail_closed();
    auto ref = tree_.resolve(rel);
    if (ref) evaluate_cgroup(*ref);
}

void AutoBinder::on_removed(const std::string& rel) {
    auto b = store_.binding_by_path(rel);
    if (b && *b) {
        auto ref = tree_.resolve(rel);
        auto id = ref ? cgroup_id_of(ref->fs_path) : Result<uint64_t>(ref.error());
        if (!id || *id != (*b)->cgroup_id) {
            try {
                binder_.unbind_record(**b, PBPF_BIND_GONE);
                ++gone_;
            } catch (const std::exception& e) {
                ++errors_;
                spdlog::warn("unbind removed cgroup {}: {}", rel, e.what());
            }
        }
    }
    if (std::find(fail_closed_paths_.begin(), fail_closed_paths_.end(), rel) !=
        fail_closed_paths_.end())
        update_fail_closed();
}

void AutoBinder::on_link_added(const LinkInfo& link) {
    std::lock_guard<std::mutex> lock(mu_);
    evaluate_interface(link);
}

void AutoBinder::on_link_removed(const LinkInfo& link) {
    std::lock_guard<std::mutex> lock(mu_);
    auto b = store_.if_binding("", link.ifname);
    if (!b || !*b || (*b)->ifindex != link.ifindex) return;
    try {
        if_binder_.unbind_record(**b, PBPF_BIND_GONE);
        ++gone_;
    } catch (const std::exception& e) {
        ++errors_;
        spdlog::warn("unbind removed interface {}: {}", link.ifname, e.what());
    }
}

std::vector<CgroupRef> AutoBinder::user_slices(uint32_t uid) {
    std::vector<CgroupRef> out;
    std::vector<std::pair<CgroupRef, int>> todo{{tree_.root(), 0}};
    while (!todo.empty()) {
        auto [ref, depth] = todo.back();
        todo.pop_back();
        if (user_slice_uid(ref.rel_path) == uid) out.push_back(ref);
        if (depth >= kMaxWalkDepth) continue;
        for (const auto& name : subdirs(ref.fs_path))
            todo.emplace_back(child_of(ref, name), depth + 1);
    }
    return out;
}

json AutoBinder::list_rules() {
    refresh_rules();
    std::map<int64_t, size_t> made;
    for (const auto& b : must(store_.bindings()))
        if (b.origin == "rule") made[b.rule_id]++;
    for (const auto& b : must(store_.if_bindings()))
        if (b.origin == "rule") made[b.rule_id]++;
    json arr = json::array();
    for (const auto& r : rules_) {
        json j = rule_json(r);
        j["bindings"] = made[r.id];
        arr.push_back(std::move(j));
    }
    return arr;
}

json AutoBinder::add_rule(const json& body) {
    if (!body.is_object()) throw ApiError(400, "rule must be a JSON object");
    BindRule r;
    r.persona = str_field(body, "persona", true);
    const std::string kind = str_field(body, "kind", true);
    auto k = rule_kind_from(kind);
    if (!k)
        throw ApiError(400,
                       "rule kind '" + kind + "' is not one of cgroup, user, group, interface");
    r.kind = *k;
    r.pattern = str_field(body, "pattern", true);
    r.origin = "api";
    r.created_by = "api";
    r.created_at = static_cast<int64_t>(std::time(nullptr));
    if (auto why = validate_rule(r)) throw ApiError(400, *why);
    if (!must(store_.persona(r.persona))) throw ApiError(404, "no persona '" + r.persona + "'");
    auto id = store_.insert_bind_rule(r);
    if (!id) throw ApiError(id.error().err == EEXIST ? 409 : 500, id.error().message);
    r.id = *id;
    spdlog::info("binding rule {} added: {} \"{}\" -> '{}'", r.id, to_string(r.kind), r.pattern,
                 r.persona);
    reevaluate();
    for (auto& j : list_rules())  // the new rule with the number of bindings it made
        if (j.value("id", int64_t{0}) == r.id) return j;
    return rule_json(r);
}

json AutoBinder::remove_rule(const std::string& id_text) {
    int64_t id = 0;
    try {
        size_t used = 0;
        id = std::stoll(id_text, &used);
        if (used != id_text.size() || id <= 0) throw std::invalid_argument("id");
    } catch (...) {
        throw ApiError(400, "bad rule id '" + id_text + "'");
    }
    auto r = must(store_.bind_rule(id));
    if (!r || r->origin == "bind") throw ApiError(404, "no binding rule " + id_text);
    if (r->origin == "pdl")
        throw ApiError(409, "rule " + id_text + " comes from a bind block for persona '" +
                                r->persona +
                                "'; remove it from the PDL file and apply the file again");
    must(store_.delete_bind_rule(id));
    spdlog::info("binding rule {} removed", id);
    reevaluate();
    return {{"removed", rule_json(*r)}};
}

json AutoBinder::bind_user(const json& body) {
    if (!body.is_object()) throw ApiError(400, "binding must be a JSON object");
    const std::string user = str_field(body, "user", true);
    const std::string persona = str_field(body, "persona", false);
    auto uid = users_.uid_of(user);
    if (!uid) throw ApiError(404, "no user '" + user + "'");
    if (!persona.empty()) {
        BindRule r;
        r.persona = persona;
        r.kind = RuleKind::User;
        r.pattern = user;
        r.origin = "bind";
        r.created_by = "api";
        r.created_at = static_cast<int64_t>(std::time(nullptr));
        if (auto why = validate_rule(r)) throw ApiError(400, *why);
        if (!must(store_.persona(persona))) throw ApiError(404, "no persona '" + persona + "'");
        // One explicit binding per user, however it was named ("alice" or "1000").
        auto txn = must(store_.begin());
        for (const auto& old : explicit_)
            if (old.kind == RuleKind::User &&
                (old.pattern == user || users_.uid_of(old.pattern) == uid))
                must(store_.delete_bind_rule(old.id));
        must(store_.insert_bind_rule(r));
        must(txn->commit());
        refresh_rules();
    }
    json bound = json::array();
    for (const auto& ref : user_slices(*uid)) {
        evaluate_cgroup(ref);
        auto id = cgroup_id_of(ref.fs_path);
        if (!id) continue;
        if (auto b = must(store_.binding(*id)))
            bound.push_back({{"cgroup", b->cgroup_path}, {"persona", b->persona}});
    }
    json j = {{"user", user}, {"uid", *uid}, {"bound", bound}};
    if (!persona.empty()) j["persona"] = persona;
    return j;
}

json AutoBinder::unbind_user(const std::string& user) {
    std::vector<BindRule> found;
    const auto uid = users_.uid_of(user);
    for (const auto& r : explicit_)
        if (r.kind == RuleKind::User &&
            (r.pattern == user || (uid && users_.uid_of(r.pattern) == uid)))
            found.push_back(r);
    if (found.empty()) throw ApiError(404, "no binding for user '" + user + "'");
    auto txn = must(store_.begin());
    for (const auto& r : found) must(store_.delete_bind_rule(r.id));
    must(txn->commit());
    reevaluate();
    return {{"unbound", {{"user", user}, {"persona", found.front().persona}}}};
}

std::optional<std::string> AutoBinder::user_binding_persona(const std::string& user) {
    const auto uid = users_.uid_of(user);
    for (const auto& r : explicit_)
        if (r.kind == RuleKind::User &&
            (r.pattern == user || (uid && users_.uid_of(r.pattern) == uid)))
            return r.persona;
    return std::nullopt;
}

json AutoBinder::user_bindings() {
    json arr = json::array();
    for (const auto& r : explicit_)
        arr.push_back({{"user", r.pattern},
                       {"persona", r.persona},
                       {"bound_at", r.created_at},
                       {"origin", "api"}});
    return arr;
}

json AutoBinder::status() {
    json fc = json::array();
    for (const auto& rel : fail_closed_paths_) {
        auto ref = tree_.resolve(rel);
        bool present = ref && static_cast<bool>(cgroup_id_of(ref->fs_path));
        fc.push_back({{"cgroup", rel}, {"present", present}});
    }
    return {{"rules", rules_.size()},
            {"user_bindings", explicit_.size()},
            {"watched_cgroups", cgroups_ ? cgroups_->watched() : 0},
            {"watching_interfaces", links_ != nullptr},
            {"fail_closed", fc},
            {"bound_by_rule", bound_by_rule_.load()},
            {"unbound_by_rule", unbound_by_rule_.load()},
            {"unbound_gone", gone_.load()},
            {"errors", errors_.load()}};
}

void add_rule_routes(ApiServer& server, AutoBinder& auto_binder) {
    server.add_route("GET", "/v1/rules",
                     [&auto_binder](const httplib::Request&) { return auto_binder.list_rules(); });
    server.add_route(
        "POST", "/v1/rules",
        [&auto_binder](const httplib::Request& req) {
            json body = parse_body(req);
            if (body.is_object() && body.contains("persona") && body["persona"].is_string())
                audit_note(body["persona"].get<std::string>(),
                           body.value("kind", std::string("?")) + " " +
                               body.value("pattern", std::string("?")));
            return auto_binder.add_rule(body);
        },
        true, "rule-add");
    server.add_route(
        "DELETE", R"(/v1/rules/([^/]+))",
        [&auto_binder](const httplib::Request& req) {
            audit_note("", "rule " + req.matches[1].str());
            return auto_binder.remove_rule(req.matches[1].str());
        },
        true, "rule-rm");
}

}  // namespace pbpf::agent
