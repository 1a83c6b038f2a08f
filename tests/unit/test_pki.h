// Throwaway certificate authorities and host certificates for the TLS tests, made with the
// OpenSSL C API (EC P-256, fast) and written as PEM files into a test's temp directory.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace pbpf::test {

class TestPki {
  public:
    explicit TestPki(std::string dir);
    ~TestPki();
    TestPki(const TestPki&) = delete;
    TestPki& operator=(const TestPki&) = delete;

    // A self-signed CA named `name` (its CN); returns the path of its certificate.
    std::string make_ca(const std::string& name);

    struct Leaf {
        std::string cert, key;  // PEM file paths
    };
    struct LeafOptions {
        std::vector<std::string> dns;  // DNS subjectAltNames
        bool expired = false;          // valid from 2 days ago until yesterday
    };
    // A host certificate signed by CA `ca` (serverAuth + clientAuth), written as
    // `file`.crt / `file`.key.
    Leaf issue(const std::string& ca, const std::string& file, const std::string& cn,
               const LeafOptions& opt);
    Leaf issue(const std::string& ca, const std::string& file, const std::string& cn) {
        return issue(ca, file, cn, LeafOptions{});
    }

    std::string ca_file(const std::string& name) const;

  private:
    struct Ca;
    std::string dir_;
    std::map<std::string, std::unique_ptr<Ca>> cas_;
    long serial_ = 1;
};

}  // namespace pbpf::test
