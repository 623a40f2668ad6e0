#include "common/flags.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cstdio>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"

namespace txn::common {
namespace {

const std::vector<std::string>& Empty() {
  static const auto* empty = new std::vector<std::string>();
  return *empty;
}

std::string Normalize(std::string name) { return absl::StrReplaceAll(name, {{"_", "-"}}); }

}  // namespace

const std::string& ParsedFlags::Get(const std::string& name) const {
  auto it = values_.find(name);
  if (it != values_.end() && !it->second.empty()) return it->second.back();
  static const std::string kEmpty;
  auto d = defaults_.find(name);
  return d == defaults_.end() ? kEmpty : d->second;
}

const std::vector<std::string>& ParsedFlags::GetAll(const std::string& name) const {
  auto it = values_.find(name);
  return it == values_.end() ? Empty() : it->second;
}

bool ParsedFlags::GetBool(const std::string& name) const {
  const std::string& v = Get(name);
  return v == "true" || v == "1" || v == "yes";
}

absl::StatusOr<int64_t> ParsedFlags::GetInt(const std::string& name, int64_t min,
                                            int64_t max) const {
  int64_t v = 0;
  if (!absl::SimpleAtoi(Get(name), &v) || v < min || v > max) {
    return absl::InvalidArgumentError(absl::StrCat("--", name, " must be an integer in [", min,
                                                   ", ", max, "], got '", Get(name), "'"));
  }
  return v;
}

bool ParsedFlags::Has(const std::string& name) const {
  auto it = values_.find(name);
  return it != values_.end() && !it->second.empty();
}

FlagSet::FlagSet(std::string program, std::string summary)
    : program_(std::move(program)), summary_(std::move(summary)) {
  Add({"config", "FILE", "YAML file of flag values; command-line flags override it", ""});
  Add({"help", "", "print this help and exit", ""});
}

void FlagSet::Add(FlagSpec spec) { specs_.push_back(std::move(spec)); }

const FlagSpec* FlagSet::Find(const std::string& name) const {
  auto it =
      std::find_if(specs_.begin(), specs_.end(), [&](const FlagSpec& s) { return s.name == name; });
  return it == specs_.end() ? nullptr : &*it;
}

absl::StatusOr<ParsedFlags> FlagSet::Parse(int argc, char** argv) const {
  ParsedFlags out;
  for (const auto& s : specs_) out.defaults_[s.name] = s.default_value;
  std::map<std::string, std::vector<std::string>> cli;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (!absl::StartsWith(arg, "--")) {
      out.positional_.push_back(arg);
      continue;
    }
    std::string name = arg.substr(2), value;
    bool has_value = false;
    if (auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      has_value = true;
    }
    name = Normalize(name);
    const FlagSpec* spec = Find(name);
    if (spec == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown flag --", name, " (see ", program_, " --help)"));
    }
    if (name == "help") {
      out.help_ = true;
      continue;
    }
    if (spec->value_name.empty()) {
      if (!has_value) value = "true";
    } else if (!has_value) {
      if (i + 1 >= argc) {
        return absl::InvalidArgumentError(
            absl::StrCat("flag --", name, " needs a value (", spec->value_name, ")"));
      }
      value = argv[++i];
    }
    cli[name].push_back(value);
  }
  if (cli.count("config") != 0) {
    const std::string& path = cli["config"].back();
    YAML::Node root;
    try {
      root = YAML::LoadFile(path);
    } catch (const YAML::Exception& e) {
      return absl::InvalidArgumentError(absl::StrCat("--config ", path, ": ", e.what()));
    }
    if (!root.IsMap() && !root.IsNull()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--config ", path, ": expected a map of flag names to values"));
    }
    for (const auto& kv : root) {
      std::string name = Normalize(kv.first.as<std::string>());
      const FlagSpec* spec = Find(name);
      if (spec == nullptr || name == "config" || name == "help") {
        return absl::InvalidArgumentError(
            absl::StrCat("--config ", path, ": unknown key '", name, "'"));
      }
      std::vector<std::string> values;
      try {
        if (kv.second.IsSequence()) {
          if (!spec->repeated) {
            return absl::InvalidArgumentError(
                absl::StrCat("--config ", path, ": key '", name, "' takes one value, not a list"));
          }
          for (const auto& v : kv.second) values.push_back(v.as<std::string>());
        } else {
          values.push_back(kv.second.as<std::string>());
        }
      } catch (const YAML::Exception& e) {
        return absl::InvalidArgumentError(
            absl::StrCat("--config ", path, ": key '", name, "': ", e.what()));
      }
      out.values_[name] = std::move(values);
    }
  }
  for (auto& [name, values] : cli) out.values_[name] = std::move(values);
  return out;
}

std::optional<int> FlagSet::ParseOrExit(int argc, char** argv, ParsedFlags* out,
                                        bool allow_positional) const {
  absl::StatusOr<ParsedFlags> parsed = Parse(argc, argv);
  if (!parsed.ok()) {
    std::fprintf(stderr, "%s: %s\n", program_.c_str(),
                 std::string(parsed.status().message()).c_str());
    return 2;
  }
  if (parsed->help_requested()) {
    std::fputs(Usage().c_str(), stdout);
    return 0;
  }
  if (!allow_positional && !parsed->positional().empty()) {
    std::fprintf(stderr, "%s: unexpected argument '%s'\n", program_.c_str(),
                 parsed->positional()[0].c_str());
    return 2;
  }
  *out = std::move(*parsed);
  return std::nullopt;
}

std::string FlagSet::Usage() const {
  std::string s = absl::StrCat("usage: ", program_, " [flags]\n", summary_, "\n\nflags:\n");
  for (const auto& spec : specs_) {
    std::string left = absl::StrCat("  --", spec.name);
    if (!spec.value_name.empty()) absl::StrAppend(&left, " ", spec.value_name);
    if (left.size() < 34) left.resize(34, ' ');
    absl::StrAppend(&s, left, " ", spec.help);
    if (spec.repeated) absl::StrAppend(&s, " (repeatable)");
    if (!spec.default_value.empty()) absl::StrAppend(&s, " [", spec.default_value, "]");
    absl::StrAppend(&s, "\n");
  }
  return s;
}

}  // namespace txn::common
