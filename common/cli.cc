#include "common/cli.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <memory>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace m3serve {

FlagSet::FlagSet(std::string usage, std::string description)
    : usage_(std::move(usage)), description_(std::move(description)) {}

void FlagSet::String(const std::string& name, std::string* out, const std::string& help,
                     const std::string& value_name) {
  flags_.push_back({name, help, value_name, *out, false, [out](const std::string& v) {
                      *out = v;
                      return absl::OkStatus();
                    }});
}

void FlagSet::Int(const std::string& name, int64_t* out, const std::string& help,
                  const std::string& value_name) {
  flags_.push_back({name, help, value_name, absl::StrCat(*out), false,
                    [out, name](const std::string& v) {
                      int64_t x;
                      if (!absl::SimpleAtoi(v, &x)) {
                        return absl::InvalidArgumentError(
                            absl::StrCat("flag --", name, ": expected an integer, got '", v, "'"));
                      }
                      *out = x;
                      return absl::OkStatus();
                    }});
}

void FlagSet::Double(const std::string& name, double* out, const std::string& help,
                     const std::string& value_name) {
  flags_.push_back({name, help, value_name, absl::StrCat(*out), false,
                    [out, name](const std::string& v) {
                      double x;
                      if (!absl::SimpleAtod(v, &x)) {
                        return absl::InvalidArgumentError(
                            absl::StrCat("flag --", name, ": expected a number, got '", v, "'"));
                      }
                      *out = x;
                      return absl::OkStatus();
                    }});
}

void FlagSet::Bool(const std::string& name, bool* out, const std::string& help) {
  flags_.push_back({name, help, "", *out ? "true" : "false", true,
                    [out, name](const std::string& v) {
                      std::string l = absl::AsciiStrToLower(v);
                      if (l == "true" || l == "1" || l == "yes") {
                        *out = true;
                      } else if (l == "false" || l == "0" || l == "no") {
                        *out = false;
                      } else {
                        return absl::InvalidArgumentError(
                            absl::StrCat("flag --", name, ": expected true or false, got '", v, "'"));
                      }
                      return absl::OkStatus();
                    }});
}

void FlagSet::List(const std::string& name, std::vector<std::string>* out,
                   const std::string& help, const std::string& value_name) {
  std::string def;
  for (const auto& s : *out) absl::StrAppend(&def, def.empty() ? "" : ",", s);
  // The first use on the command line replaces the default; later uses append.
  auto replaced = std::make_shared<bool>(false);
  flags_.push_back({name, help, value_name, def, false, [out, replaced](const std::string& v) {
                      if (!*replaced) out->clear();
                      *replaced = true;
                      for (auto& item : SplitList(v)) out->push_back(std::move(item));
                      return absl::OkStatus();
                    }});
}

const FlagSet::Flag* FlagSet::Find(const std::string& name) const {
  for (const auto& f : flags_) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

absl::Status FlagSet::Parse(int argc, char** argv, int first,
                            std::vector<std::string>* positional) {
  bool flags_done = false;
  for (int i = first; i < argc; ++i) {
    std::string arg = argv[i];
    if (flags_done || arg.size() < 2 || arg[0] != '-') {
      positional->push_back(arg);
      continue;
    }
    if (arg == "--") {
      flags_done = true;
      continue;
    }
    if (arg == "-h" || arg == "--help") {
      help_requested_ = true;
      continue;
    }
    std::string body = arg.substr(arg[1] == '-' ? 2 : 1);
    std::string name = body, value;
    bool has_value = false;
    if (auto eq = body.find('='); eq != std::string::npos) {
      name = body.substr(0, eq);
      value = body.substr(eq + 1);
      has_value = true;
    }
    const Flag* flag = Find(name);
    if (flag == nullptr && !has_value && name.rfind("no-", 0) == 0) {
      const Flag* neg = Find(name.substr(3));
      if (neg != nullptr && neg->is_bool) {
        absl::Status s = neg->set("false");
        if (!s.ok()) return s;
        continue;
      }
    }
    if (flag == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown flag '", arg, "' (see --help)"));
    }
    if (!has_value) {
      if (flag->is_bool) {
        value = "true";
      } else if (i + 1 < argc) {
        value = argv[++i];
      } else {
        return absl::InvalidArgumentError(
            absl::StrCat("flag --", name, " needs a value (", flag->value_name, ")"));
      }
    }
    absl::Status s = flag->set(value);
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

bool FlagSet::ParseOrExit(int argc, char** argv, int first, const std::string& prog,
                          std::vector<std::string>* positional, int* exit_code) {
  absl::Status s = Parse(argc, argv, first, positional);
  if (!s.ok()) {
    std::fprintf(stderr, "%s: %s\n", prog.c_str(), std::string(s.message()).c_str());
    *exit_code = 2;
    return false;
  }
  if (help_requested_) {
    std::fputs(Help().c_str(), stdout);
    *exit_code = 0;
    return false;
  }
  return true;
}

std::string FlagSet::Help() const {
  std::string out = absl::StrCat("usage: ", usage_, "\n\n", description_, "\n\nflags:\n");
  for (const auto& f : flags_) {
    std::string left = absl::StrCat("  --", f.name);
    if (!f.is_bool) absl::StrAppend(&left, " ", f.value_name);
    if (left.size() < 28) left.resize(28, ' ');
    else absl::StrAppend(&left, "\n", std::string(28, ' '));
    absl::StrAppend(&out, left, f.help);
    if (!f.default_text.empty() && f.default_text != "false") {
      absl::StrAppend(&out, " (default: ", f.default_text, ")");
    }
    absl::StrAppend(&out, "\n");
  }
  absl::StrAppend(&out, "  -h, --help                show this help\n");
  if (!epilog_.empty()) absl::StrAppend(&out, "\n", epilog_, "\n");
  return out;
}

std::vector<std::string> SplitList(const std::string& text) {
  std::vector<std::string> out;
  for (absl::string_view part : absl::StrSplit(text, ',')) {
    part = absl::StripAsciiWhitespace(part);
    if (!part.empty()) out.emplace_back(part);
  }
  return out;
}

}  // namespace m3serve
