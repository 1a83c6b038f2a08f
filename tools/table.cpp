// Column widths are measured in bytes: the CLI's cells are ASCII (names, paths, numbers).
#include "tools/table.h"

#include <algorithm>

namespace pbpf::cli {

Table::Table(std::vector<std::string> headers, std::vector<Align> align)
    : headers_(std::move(headers)), align_(std::move(align)) {
    align_.resize(headers_.size(), Align::Left);
}

void Table::add_row(std::vector<std::string> cells) {
    cells.resize(headers_.size());
    rows_.push_back(std::move(cells));
}

void Table::print(std::ostream& out) const {
    std::vector<size_t> width(headers_.size());
    for (size_t c = 0; c < headers_.size(); ++c) width[c] = headers_[c].size();
    for (const auto& row : rows_)
        for (size_t c = 0; c < row.size(); ++c) width[c] = std::max(width[c], row[c].size());

    auto print_row = [&](const std::vector<std::string>& row) {
        std::string line;
        for (size_t c = 0; c < row.size(); ++c) {
            const bool last = c + 1 == row.size();
            std::string pad(width[c] - row[c].size(), ' ');
            if (align_[c] == Align::Right) {
                line += pad + row[c];
            } else {
                line += row[c];
                if (!last) line += pad;
            }
            if (!last) line += "  ";
        }
        while (!line.empty() && line.back() == ' ') line.pop_back();
        out << line << '\n';
    };
    print_row(headers_);
    for (const auto& row : rows_) print_row(row);
}

}  // namespace pbpf::cli
