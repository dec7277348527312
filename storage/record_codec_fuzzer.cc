// Fuzz target: the store's value decoders and key parsers (storage/
// record_codec.h, storage/key_codec.h). A corrupt table or blob file hands
// arbitrary bytes to the decoders, and GetInstances hands client text to
// ParseInstanceId: every input decodes or fails with DataLoss (values) /
// InvalidArgument (keys, ids); whatever decodes re-encodes to a record that
// decodes to the same value. The first byte picks the decoder.
// Seeds: fuzz/corpus/record_codec_fuzzer.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "common/logging.h"
#include "storage/key_codec.h"
#include "storage/record_codec.h"

namespace m3serve::storage {
namespace {

void CheckError(const absl::Status& s, absl::StatusCode expected) {
  M3_CHECK(s.code() == expected) << s;
  M3_CHECK(!s.message().empty());
}

// Decode, and when that succeeds, check that encode + decode gives it back.
template <typename T, typename Decode, typename Encode>
void RoundTrip(absl::string_view value, Decode decode, Encode encode) {
  T x{};
  absl::Status s = decode(value, &x);
  if (!s.ok()) return CheckError(s, absl::StatusCode::kDataLoss);
  T again{};
  M3_CHECK(decode(encode(x), &again).ok()) << "a decoded record does not re-encode";
  M3_CHECK(again == x) << "a decoded record changes when re-encoded";
}

}  // namespace
}  // namespace m3serve::storage

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace m3serve::storage;
  if (size == 0) return 0;
  const absl::string_view in(reinterpret_cast<const char*>(data + 1), size - 1);
  switch (data[0] % 7) {
    case 0:
      RoundTrip<Instance>(in, DecodeInstance, EncodeInstance);
      break;
    case 1: {  // with or without a pack location
      ImageMeta m, again;
      std::optional<PackLocation> where, again_where;
      absl::Status s = DecodeImageMeta(in, &m, &where);
      if (!s.ok()) {
        CheckError(s, absl::StatusCode::kDataLoss);
        break;
      }
      M3_CHECK(DecodeImageMeta(EncodeImageMeta(m, where ? &*where : nullptr), &again, &again_where).ok());
      M3_CHECK(again == m && again_where == where) << "a decoded image record changes when re-encoded";
      break;
    }
    case 2:
      RoundTrip<TaskInfo>(in, DecodeTaskInfo, EncodeTaskInfo);
      break;
    case 3:
      RoundTrip<std::vector<std::string>>(in, DecodeStringList, EncodeStringList);
      break;
    case 4:
      RoundTrip<FileProgress>(in, DecodeFileProgress, EncodeFileProgress);
      break;
    case 5: {
      GroupKey g;
      uint64_t ordinal = 0;
      absl::Status s = ParseInstanceKey(in, &g, &ordinal);
      if (!s.ok()) {
        M3_CHECK(s.code() == absl::StatusCode::kInvalidArgument || s.code() == absl::StatusCode::kDataLoss) << s;
        break;
      }
      M3_CHECK(InstanceKey(g, ordinal) == in) << "an instance key parses to another key";
      break;
    }
    default: {
      GroupKey g;
      uint64_t ordinal = 0;
      absl::Status s = ParseInstanceId(in, &g, &ordinal);
      if (!s.ok()) {
        CheckError(s, absl::StatusCode::kInvalidArgument);
        break;
      }
      GroupKey g2;
      uint64_t ordinal2 = 0;
      M3_CHECK(ParseInstanceId(FormatInstanceId(g, ordinal), &g2, &ordinal2).ok());
      M3_CHECK(g2 == g && ordinal2 == ordinal) << "an instance id does not round-trip";
      M3_CHECK(InstanceKey(g, ordinal).size() > 0);
      break;
    }
  }
  return 0;
}
