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

bool IsValidIncarnation(absl::string_view incarnation) {
  if (incarnation.size() != kIncarnationLength) return false;
  for (char c : incarnation) {
    if (!(std::isdigit(static_cast<unsigned char>(c)) || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

std::string MakeTxnId(absl::string_view node, absl::string_view incarnation, uint64_t epoch,
                      uint64_t seq) {
  return absl::StrCat(node, "-", incarnation, "-", epoch, "-", seq);
}

std::optional<TxnIdParts> ParseTxnId(absl::string_view txn_id) {
  std::vector<absl::string_view> parts = absl::StrSplit(txn_id, '-');
  if (parts.size() != 3 && parts.size() != 4) return std::nullopt;
  const bool legacy = parts.size() == 3;
  absl::string_view epoch = parts[legacy ? 1 : 2], seq = parts[legacy ? 2 : 3];
  TxnIdParts out;
  if (!IsValidNodeId(parts[0]) || (!legacy && !IsValidIncarnation(parts[1])) ||
      !AllDigits(epoch, 10) || !AllDigits(seq, 12) || !absl::SimpleAtoi(epoch, &out.epoch) ||
      !absl::SimpleAtoi(seq, &out.seq)) {
    return std::nullopt;
  }
  out.node = std::string(parts[0]);
  if (!legacy) out.incarnation = std::string(parts[1]);
  return out;
}

bool IsValidTxnId(absl::string_view txn_id) { return ParseTxnId(txn_id).has_value(); }

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

std::string NodeOfGid(absl::string_view gid) {
  std::optional<BranchName> name = ParseBranchGid(gid);
  if (!name) return "";
  std::optional<TxnIdParts> parts = ParseTxnId(name->txn_id);
  return parts ? parts->node : "";
}

}  // namespace txn::common
