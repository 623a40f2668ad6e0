#include "common/bearer_token.h"

#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/file_text.h"

namespace txn::common {

absl::StatusOr<std::string> ReadBearerToken(const std::string& path) {
  std::optional<std::string> text = ReadFileText(path);
  if (!text) return absl::NotFoundError(absl::StrCat("cannot read token file ", path));
  for (absl::string_view line : absl::StrSplit(*text, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#') continue;
    std::vector<absl::string_view> fields =
        absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    return std::string(fields.size() >= 2 ? fields[1] : fields[0]);
  }
  return absl::InvalidArgumentError(absl::StrCat("token file ", path, " holds no token"));
}

}  // namespace txn::common
