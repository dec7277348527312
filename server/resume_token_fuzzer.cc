// Fuzz target: resume-token decoding (StreamPlan::Resume). Tokens are client
// bytes; a token is accepted only when it is exactly one the plan issues, so
// nobody can forge a position, move a token to another shard, order, epoch or
// selection, or reuse it across dataset versions or token keys. Inputs are a
// mode byte and a payload: raw token bytes, a valid token with the payload
// XORed in, or a valid token's prefix with the payload appended.
// Seeds: fuzz/corpus/resume_token_fuzzer.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "common/hash.h"
#include "common/logging.h"
#include "server/stream_plan.h"

namespace m3serve::server {
namespace {

constexpr char kVersion[] = "00112233445566778899aabbccddeeff";
constexpr char kKey[] = "fuzz-key-0123456789";

std::vector<StreamPlan>& Plans() {
  static auto* plans = [] {
    auto sel = std::make_shared<ResolvedSelection>();
    sel->Add({"vqa-v2", "train", "zh"}, 700);
    sel->Add({"vqa-v2", "validation", "zh"}, 300);
    sel->Add({"coco", "train", "en"}, 1);
    sel->digest = ContentHash("selection");
    auto other = std::make_shared<ResolvedSelection>(*sel);
    other->digest = ContentHash("another selection");
    auto* v = new std::vector<StreamPlan>;
    auto add = [&](std::shared_ptr<ResolvedSelection> s, PlanParams p, const char* version,
                   const char* key) {
      auto plan = StreamPlan::Create(s, p, version, key);
      M3_CHECK(plan.ok()) << plan.status();
      v->push_back(std::move(*plan));
    };
    add(sel, {3, 8, false, {true, 17, 2}}, kVersion, kKey);
    add(sel, {3, 8, false, {true, 17, 3}}, kVersion, kKey);   // another epoch
    add(sel, {4, 8, false, {true, 17, 2}}, kVersion, kKey);   // another shard
    add(sel, {0, 1, false, {false, 0, 0}}, kVersion, kKey);   // sequential, unsharded
    add(sel, {3, 8, true, {true, 17, 2}}, kVersion, kKey);    // drop_remainder
    add(other, {3, 8, false, {true, 17, 2}}, kVersion, kKey); // another selection
    add(sel, {3, 8, false, {true, 17, 2}}, "ffeeddccbbaa99887766554433221100", kKey);
    add(sel, {3, 8, false, {true, 17, 2}}, kVersion, "another-key");
    return v;
  }();
  return *plans;
}

void Check(const StreamPlan& plan, const std::string& token) {
  auto r = plan.Resume(token);
  if (r.ok()) {
    M3_CHECK(*r <= plan.shard_size());
    M3_CHECK(plan.Token(*r) == token) << "a token the plan did not issue was accepted";
  } else {
    M3_CHECK(r.status().code() == absl::StatusCode::kInvalidArgument) << r.status();
    M3_CHECK(!r.status().message().empty());
  }
}

}  // namespace
}  // namespace m3serve::server

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace m3serve::server;
  if (size == 0) return 0;
  const std::vector<StreamPlan>& plans = Plans();
  const uint8_t mode = data[0];
  const std::string payload(reinterpret_cast<const char*>(data + 1), size - 1);
  const StreamPlan& issuer = plans[(mode >> 2) % plans.size()];
  uint64_t pos = 0;
  std::memcpy(&pos, payload.data(), std::min<size_t>(payload.size(), sizeof(pos)));
  pos %= issuer.shard_size() + 1;
  const std::string valid = issuer.Token(pos);

  std::string token;
  switch (mode % 3) {
    case 0:
      token = payload;
      break;
    case 1:
      token = valid;
      for (size_t i = 0; i < payload.size(); ++i) token[(i + pos) % token.size()] ^= payload[i];
      break;
    default:
      token = valid.substr(0, payload.empty() ? 0 : static_cast<uint8_t>(payload[0]) % (valid.size() + 1)) +
              payload;
      break;
  }
  for (const StreamPlan& plan : plans) Check(plan, token);
  // The issuer's own token resumes where it says and nowhere else.
  auto own = issuer.Resume(valid);
  M3_CHECK(own.ok() && *own == pos) << own.status();
  for (const StreamPlan& plan : plans) {
    if (&plan != &issuer) M3_CHECK(!plan.Resume(valid).ok()) << "a token crossed plans";
  }
  return 0;
}
