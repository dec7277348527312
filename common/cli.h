// File: common/cli.h
//
// A small command-line parser for m3serve's tools, which have subcommands with
// their own flags and help (absl::flags has one global flag namespace, so it
// fits subcommand tools poorly).
//
//   FlagSet flags("m3serve-admin stats --db DIR [--json]", "Print the catalog.");
//   flags.String("db", &db, "store directory", "DIR");
//   flags.Bool("json", &json, "machine-readable output");
//   std::vector<std::string> args;
//   absl::Status s = flags.Parse(argc, argv, /*first=*/2, &args);
//
// Accepted forms: `--name value`, `--name=value`, `--flag` / `--no-flag` for
// booleans, and `--` to end flags. Lists take comma-separated values and may be
// repeated. Unknown flags and malformed values are InvalidArgument errors that
// name the flag.
#ifndef M3SERVE_COMMON_CLI_H_
#define M3SERVE_COMMON_CLI_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace m3serve {

class FlagSet {
 public:
  FlagSet(std::string usage, std::string description);

  // Register flags. `out` keeps its current value as the default shown in help.
  void String(const std::string& name, std::string* out, const std::string& help,
              const std::string& value_name = "VALUE");
  void Int(const std::string& name, int64_t* out, const std::string& help,
           const std::string& value_name = "N");
  void Double(const std::string& name, double* out, const std::string& help,
              const std::string& value_name = "X");
  void Bool(const std::string& name, bool* out, const std::string& help);
  void List(const std::string& name, std::vector<std::string>* out, const std::string& help,
            const std::string& value_name = "A,B");

  // Extra text appended to --help (e.g. exit status codes).
  void set_epilog(std::string epilog) { epilog_ = std::move(epilog); }

  // Parse argv[first..argc). Positional arguments are appended to `positional`.
  // Returns InvalidArgument naming the flag on any error. Sets help_requested()
  // for -h/--help (and returns OK).
  absl::Status Parse(int argc, char** argv, int first, std::vector<std::string>* positional);

  bool help_requested() const { return help_requested_; }

  // Parse for a command-line tool: on an error print "<prog>: <message>" to
  // stderr and set *exit_code = 2; on --help print Help() to stdout and set
  // *exit_code = 0. Returns true when the tool should go on.
  bool ParseOrExit(int argc, char** argv, int first, const std::string& prog,
                   std::vector<std::string>* positional, int* exit_code);
  std::string Help() const;

 private:
  struct Flag {
    std::string name;
    std::string help;
    std::string value_name;
    std::string default_text;
    bool is_bool = false;
    std::function<absl::Status(const std::string&)> set;
  };
  const Flag* Find(const std::string& name) const;

  std::string usage_;
  std::string description_;
  std::string epilog_;
  std::vector<Flag> flags_;
  bool help_requested_ = false;
};

// Split "a,b,,c" into {"a","b","c"} (empty items dropped, whitespace trimmed).
std::vector<std::string> SplitList(const std::string& text);

}  // namespace m3serve

#endif  // M3SERVE_COMMON_CLI_H_
