// File: common/json_writer.h
//
// A streaming JSON text builder for tool output, reject records and catalog
// entries. Strings are escaped per RFC 8259; bytes that are not valid UTF-8
// are replaced by U+FFFD so the output is always valid JSON.
//
//   JsonWriter w;
//   w.BeginObject().Key("instances").Uint(42).Key("tasks").BeginArray();
//   ... w.EndArray().EndObject();
//   std::cout << w.str();
#ifndef M3SERVE_COMMON_JSON_WRITER_H_
#define M3SERVE_COMMON_JSON_WRITER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace m3serve {

// Append `s` to `out` as a quoted, escaped JSON string.
void AppendJsonString(std::string* out, absl::string_view s);

// Return `s` with invalid UTF-8 sequences replaced by U+FFFD.
std::string SanitizeUtf8(absl::string_view s);

class JsonWriter {
 public:
  // `indent` > 0 pretty-prints with that many spaces per level.
  explicit JsonWriter(int indent = 0) : indent_(indent) {}

  JsonWriter& BeginObject();
  JsonWriter& EndObject();
  JsonWriter& BeginArray();
  JsonWriter& EndArray();
  JsonWriter& Key(absl::string_view key);
  JsonWriter& String(absl::string_view value);
  JsonWriter& Int(int64_t value);
  JsonWriter& Uint(uint64_t value);
  JsonWriter& Double(double value);
  JsonWriter& Bool(bool value);
  JsonWriter& Null();
  // Insert already-serialized JSON as a value (caller guarantees validity).
  JsonWriter& Raw(absl::string_view json);

  const std::string& str() const { return out_; }
  std::string Release() { return std::move(out_); }

 private:
  void BeforeValue();
  void Newline();
  std::string out_;
  std::vector<bool> first_;  // per open container: no element written yet
  bool after_key_ = false;
  int indent_;
};

}  // namespace m3serve

#endif  // M3SERVE_COMMON_JSON_WRITER_H_
