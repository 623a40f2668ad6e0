// Command-line and YAML-config flags for the daemons and tools.
//
// Every binary declares its flags in one FlagSet; `--config FILE` loads a YAML map whose keys are
// flag names (`data-dir` or `data_dir`) and whose values are scalars or, for repeated flags,
// lists; flags given on the command line override the file. Written here rather than with
// absl::flags because those are process-wide globals and cannot repeat a flag
// (`--participant a=... --participant b=...`). Not thread-safe; parse once in main.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace txn::common {

struct FlagSpec {
  std::string name;        // without the leading "--"
  std::string value_name;  // e.g. "HOST:PORT"; empty for a boolean switch
  std::string help;
  std::string default_value;
  bool repeated = false;
};

class ParsedFlags {
 public:
  // The last value given, or the default.
  const std::string& Get(const std::string& name) const;
  const std::vector<std::string>& GetAll(const std::string& name) const;
  bool GetBool(const std::string& name) const;
  // INVALID_ARGUMENT naming the flag when the value is not an integer in [min, max].
  absl::StatusOr<int64_t> GetInt(const std::string& name, int64_t min, int64_t max) const;
  bool Has(const std::string& name) const;
  // Words that are not flags (subcommands and their arguments), in order.
  const std::vector<std::string>& positional() const { return positional_; }
  bool help_requested() const { return help_; }

 private:
  friend class FlagSet;
  std::map<std::string, std::vector<std::string>> values_;
  std::map<std::string, std::string> defaults_;
  std::vector<std::string> positional_;
  bool help_ = false;
};

class FlagSet {
 public:
  FlagSet(std::string program, std::string summary);
  void Add(FlagSpec spec);
  // Parses argv (and --config). Returns INVALID_ARGUMENT with one line naming the bad flag.
  absl::StatusOr<ParsedFlags> Parse(int argc, char** argv) const;
  // For a binary's main: parses into *out and returns nullopt to go on; otherwise prints the
  // usage (--help: returns 0) or one line "PROGRAM: what is wrong" (returns 2), including for
  // words that are not flags unless `allow_positional`.
  std::optional<int> ParseOrExit(int argc, char** argv, ParsedFlags* out,
                                 bool allow_positional = false) const;
  std::string Usage() const;

 private:
  const FlagSpec* Find(const std::string& name) const;
  std::string program_;
  std::string summary_;
  std::vector<FlagSpec> specs_;
};

}  // namespace txn::common
