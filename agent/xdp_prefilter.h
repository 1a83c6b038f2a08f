// XdpPrefilter: the host-wide deny list of source prefixes, dropped by an XDP program on
// the configured uplinks before anything else sees the packets. Maps and links are
// pinned under <bpffs_root>/xdp/, so enforcement survives an agent restart.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/config.h"
#include "maps/result.h"

namespace pbpf::agent {

class ApiServer;
struct XdpSkeleton;  // the generated skeleton (xdp_prefilter.cpp)

inline constexpr const char* kXdpPinSubdir = "xdp";

// One source prefix of the deny list.
struct Cidr {
    int family = 0;  // AF_INET or AF_INET6
    int prefix_len = 0;
    std::array<uint8_t, 16> addr{};  // network byte order; IPv4 uses the first 4 bytes

    // Canonical text: inet_ntop form and the prefix length ("2001:db8::/32").
    std::string text() const;
    auto operator<=>(const Cidr&) const = default;
};

// Parses "198.51.100.0/24", "2001:db8::/32", or a bare address (a /32 or /128 host).
// Bits set beyond the prefix length are refused (a typo more often than not), and the
// error names the network that was probably meant.
Result<Cidr> parse_cidr(std::string_view text);

// How a program is attached to one interface.
struct XdpInterface {
    std::string name;
    int ifindex = 0;
    uint32_t slot = 0;  // counters slot
    std::string mode;   // "native" or "generic" (as the kernel reports it)
};

class XdpPrefilter {
  public:
    ~XdpPrefilter();
    XdpPrefilter(const XdpPrefilter&) = delete;
    XdpPrefilter& operator=(const XdpPrefilter&) = delete;

    // Loads (or adopts the pinned maps and links of a previous agent), writes the config's
    // deny entries, attaches to every configured interface and detaches from interfaces
    // no longer configured. Fails before changing anything when a configured interface
    // does not exist or the deny list does not fit.
    static Result<std::unique_ptr<XdpPrefilter>> start(const std::string& bpffs_root,
                                                       const XdpConfig& cfg);

    // GET /v1/xdp, POST /v1/xdp/deny, DELETE /v1/xdp/deny (run under the API mutex).
    void add_routes(ApiServer& server);

    // The API's operations; they throw ApiError on bad input.
    nlohmann::json describe() const;
    nlohmann::json add_deny(const nlohmann::json& body);
    nlohmann::json remove_deny(const std::vector<std::string>& cidrs);

    const std::vector<XdpInterface>& interfaces() const { return ifaces_; }
    uint32_t max_entries() const { return max_entries_; }

  private:
    XdpPrefilter() = default;
    Result<void> load(const XdpConfig& cfg);
    Result<void> sync_config_entries(const std::vector<Cidr>& deny);
    Result<void> attach_all(const XdpConfig& cfg);
    Result<uint32_t> count_entries() const;
    int deny_fd() const;
    int ifaces_fd() const;
    int counters_fd() const;
    int prog_fd() const;

    XdpSkeleton* skel_ = nullptr;
    std::string dir_;  // <bpffs_root>/xdp
    std::string mode_;
    uint32_t max_entries_ = 0;
    std::vector<XdpInterface> ifaces_;
    bool adopted_ = false;
};

// --uninstall: detaches and unpins the links under <bpffs_root>/xdp/ (the maps go with
// the rest of the pin dir).
Result<void> uninstall_xdp(const std::string& bpffs_root);

}  // namespace pbpf::agent
