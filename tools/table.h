// Table: aligned, plain-text tables for the CLI's human output (like `kubectl get`).
#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace pbpf::cli {

class Table {
  public:
    enum class Align { Left, Right };

    // One column per header; numeric columns read better right-aligned.
    explicit Table(std::vector<std::string> headers, std::vector<Align> align = {});

    void add_row(std::vector<std::string> cells);
    bool empty() const { return rows_.empty(); }
    // Columns separated by two spaces, no trailing blanks.
    void print(std::ostream& out) const;

  private:
    std::vector<std::string> headers_;
    std::vector<Align> align_;
    std::vector<std::vector<std::string>> rows_;
};

}  // namespace pbpf::cli
