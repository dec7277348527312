// Fuzz target: strict base64 (common/base64.h), the first thing every image
// string of an M3IT row goes through. Arbitrary text decodes or fails with
// InvalidArgument; whatever decodes re-encodes to text of the same length
// (minus an accepted data: URI prefix; unused pad bits may differ) that
// decodes to the same bytes, and every byte string round-trips.
// Seeds: fuzz/corpus/base64_fuzzer.
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/match.h"
#include "common/base64.h"
#include "common/logging.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view in(reinterpret_cast<const char*>(data), size);
  std::string decoded;
  absl::Status s = m3serve::Base64Decode(in, &decoded);
  if (s.ok()) {
    const std::string again = m3serve::Base64Encode(decoded);
    const size_t prefix = absl::StartsWith(in, "data:") ? in.find(',') + 1 : 0;
    M3_CHECK(in.size() - prefix == again.size()) << "decoded text re-encodes to another length";
    std::string twice;
    M3_CHECK(m3serve::Base64Decode(again, &twice).ok() && twice == decoded);
  } else {
    M3_CHECK(s.code() == absl::StatusCode::kInvalidArgument) << s;
    M3_CHECK(!s.message().empty());
  }
  if (!in.empty()) {  // an empty string is not an image: decoding it is an error
    std::string round;
    M3_CHECK(m3serve::Base64Decode(m3serve::Base64Encode(in), &round).ok());
    M3_CHECK(round == in) << "encode/decode round trip changed the bytes";
  }
  return 0;
}
