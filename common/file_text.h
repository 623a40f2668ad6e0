// The whole text of a small file (configs, tokens, keys, passwords): one helper instead of an
// ifstream dance in every reader. Callers word their own errors, naming the flag. Thread-safe.
#pragma once

#include <fstream>
#include <optional>
#include <sstream>
#include <string>

namespace txn::common {

// The file's contents, or nullopt when it cannot be opened.
inline std::optional<std::string> ReadFileText(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace txn::common
