#include "common/ids.h"

#include <cctype>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace txn::common {
namespace {

bool AllDigits(absl::string_view s, size_t max_len) {
  if (s.empty() || s.size() > max_len) return false;
  for (char c : s) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

}  // namespace

bool IsValidNodeId(absl::string_view node) {
  if (node.empty() || node.size() > 16) return false;
  for (char c : node) {
    if (!(std::islower(static_cast<unsigned char>(c)) ||
          std::isdigit(static_cast<unsigned char>(c)))) {
      return false;
    }
  }
  return true;
}

std::string MakeTxnId(absl::string_view node, uint64_t epoch, uint64_t seq) {
  return absl::StrCat(node, "-", epoch, "-", seq);
}

bool IsValidTxnId(absl::string_view txn_id) {
  std::vector<absl::string_view> parts = absl::StrSplit(txn_id, '-');
  return parts.size() == 3 && IsValidNodeId(parts[0]) && AllDigits(parts[1], 10) &&
         AllDigits(parts[2], 12);
}

std::string BranchGid(absl::string_view txn_id, uint32_t branch) {
  return absl::StrCat(kGidPrefix, txn_id, "_", branch);
}

std::optional<BranchName> ParseBranchGid(absl::string_view gid) {
  if (gid.substr(0, kGidPrefix.size()) != kGidPrefix) return std::nullopt;
  gid.remove_prefix(kGidPrefix.size());
  auto us = gid.rfind('_');
  if (us == absl::string_view::npos) return std::nullopt;
  absl::string_view txn = gid.substr(0, us), idx = gid.substr(us + 1);
  uint32_t branch = 0;
  if (!IsValidTxnId(txn) || !AllDigits(idx, 4) || !absl::SimpleAtoi(idx, &branch) ||
      branch >= kMaxBranches) {
    return std::nullopt;
  }
  return BranchName{std::string(txn), branch};
}

}  // namespace txn::common
