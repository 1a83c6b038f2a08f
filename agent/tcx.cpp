// TCX links pinned on bpffs.
#include "agent/tcx.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <bpf/bpf.h>
#include <spdlog/spdlog.h>

namespace pbpf::agent {

Result<void> attach_tcx_pinned(int prog_fd, uint32_t ifindex, int attach_type,
                               const std::string& pin, unsigned flags) {
    int pinned = bpf_obj_get(pin.c_str());
    if (pinned >= 0) {
        int rc = bpf_link_update(pinned, prog_fd, nullptr);
        int err = errno;
        ::close(pinned);
        if (rc == 0) return {};
        spdlog::warn("pinned {} cannot take the new program ({}); attaching anew", pin,
                     std::strerror(err));
        ::unlink(pin.c_str());
    }
    // libbpf 1.1 passes `flags` through for attach types it does not know (TCX's), and
    // BPF_F_BEFORE with no relative program means "first".
    LIBBPF_OPTS(bpf_link_create_opts, opts, .flags = flags);
    int link = bpf_link_create(prog_fd, static_cast<int>(ifindex),
                               static_cast<bpf_attach_type>(attach_type), &opts);
    if (link < 0) return sys_error("attach tc program to ifindex " + std::to_string(ifindex));
    int rc = bpf_obj_pin(link, pin.c_str());
    int err = errno;
    ::close(link);  // pinned: the pin keeps it; not pinned: this detaches it
    if (rc != 0) return Error{err, "pin " + pin + ": " + std::strerror(err)};
    return {};
}

Result<void> detach_tcx_pinned(const std::string& pin) {
    int fd = bpf_obj_get(pin.c_str());
    if (fd < 0) return {};
    if (bpf_link_detach(fd) != 0 && errno != ENOLINK && errno != EINVAL)
        spdlog::warn("detach {}: {}", pin, std::strerror(errno));
    ::close(fd);
    if (::unlink(pin.c_str()) != 0 && errno != ENOENT) return sys_error("unpin " + pin);
    return {};
}

}  // namespace pbpf::agent
