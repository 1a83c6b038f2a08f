// Small RAII pieces for libnl-route, shared by the managers that talk to the kernel's
// routing and traffic-control tables (agent/qos.cpp, agent/topology.cpp).
#pragma once

#include <net/if.h>  // before the linux/ headers libnl pulls in

#include <netlink/netlink.h>

#include <cerrno>
#include <string>

#include "maps/result.h"

namespace pbpf::agent {

inline std::string nl_error(const std::string& what, int err) {
    return what + ": " + nl_geterror(err);
}

// One route netlink socket per operation batch.
class NlRoute {
  public:
    NlRoute() : sk_(nl_socket_alloc()) {}
    ~NlRoute() {
        if (sk_ != nullptr) nl_socket_free(sk_);
    }
    NlRoute(const NlRoute&) = delete;
    NlRoute& operator=(const NlRoute&) = delete;
    Result<void> connect() {
        if (sk_ == nullptr) return Error{ENOMEM, "netlink socket"};
        int err = nl_connect(sk_, NETLINK_ROUTE);
        if (err < 0) return Error{0, nl_error("netlink connect", err)};
        return {};
    }
    nl_sock* get() const { return sk_; }

  private:
    nl_sock* sk_;
};

// A libnl object released with its own put/free function.
template <class T, void (*Put)(T*)>
struct NlPtr {
    T* p = nullptr;
    NlPtr() = default;
    explicit NlPtr(T* x) : p(x) {}
    ~NlPtr() {
        if (p != nullptr) Put(p);
    }
    NlPtr(const NlPtr&) = delete;
    NlPtr& operator=(const NlPtr&) = delete;
};

}  // namespace pbpf::agent
