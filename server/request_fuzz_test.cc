// Deterministic randomized ("fuzz") tests of what a hostile client controls:
// StreamRequest bytes, selection validation and resume tokens. Every input
// must give OK or a clean error: no crash, no hang, no token accepted that the
// server did not issue. Seeds are fixed, so failures reproduce.
#include <random>

#include "common/status_matchers.h"
#include "gtest/gtest.h"
#include "m3serve/v1/dataset.pb.h"
#include "server/proto_convert.h"
#include "server/stream_plan.h"

namespace m3serve::server {
namespace {

std::string RandomBytes(std::mt19937_64& rng, size_t max_len) {
  std::string s(rng() % (max_len + 1), '\0');
  for (char& c : s) c = static_cast<char>(rng());
  return s;
}

v1::StreamRequest ValidRequest() {
  v1::StreamRequest r;
  r.mutable_selection()->add_tasks("vqa-v2");
  r.mutable_selection()->add_languages("zh");
  r.mutable_sharding()->set_index(3);
  r.mutable_sharding()->set_count(8);
  r.set_order(v1::ORDER_SHUFFLED);
  r.set_seed(17);
  r.set_epoch(2);
  r.mutable_images()->set_mode(v1::IMAGE_MODE_DECODED);
  r.mutable_images()->set_width(224);
  r.mutable_images()->set_height(224);
  r.set_batch_size(32);
  return r;
}

TEST(RequestFuzzTest, RandomAndMutatedRequestsDecodeOrFailCleanly) {
  std::mt19937_64 rng(20261127);
  const std::string valid = ValidRequest().SerializeAsString();
  RequestLimits limits;
  auto selection = std::make_shared<ResolvedSelection>();
  selection->Add({"vqa-v2", "train", "zh"}, 100);
  selection->Seal();
  int parsed = 0, accepted = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string bytes;
    if (i % 2 == 0) {
      bytes = RandomBytes(rng, 256);
    } else {  // mutate a valid request: flips, truncation, insertion
      bytes = valid;
      const int edits = 1 + static_cast<int>(rng() % 4);
      for (int e = 0; e < edits && !bytes.empty(); ++e) {
        size_t at = rng() % bytes.size();
        switch (rng() % 3) {
          case 0: bytes[at] = static_cast<char>(bytes[at] ^ (1 << (rng() % 8))); break;
          case 1: bytes.resize(at); break;
          default: bytes.insert(at, 1, static_cast<char>(rng())); break;
        }
      }
    }
    v1::StreamRequest req;
    if (!req.ParseFromString(bytes)) continue;
    ++parsed;
    StreamSettings settings;
    absl::Status s = FromProto(req, limits, &settings);
    // The view's rules are the plan's (one place for each).
    if (s.ok()) s = StreamPlan::Create(selection, settings.plan, "00", "key").status();
    if (s.ok()) {
      ++accepted;
      if (settings.plan.schedule) {
        EXPECT_LT(settings.plan.rank, settings.plan.world_size);
        EXPECT_LT(settings.plan.worker, settings.plan.num_workers);
      } else {
        EXPECT_GE(settings.plan.shard_count, 1u);
        EXPECT_LT(settings.plan.shard_index, settings.plan.shard_count);
      }
      EXPECT_GE(settings.batch_size, 1u);
      EXPECT_LE(settings.batch_size, limits.max_batch_size);
    } else {
      EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
      EXPECT_FALSE(s.message().empty());
    }
  }
  EXPECT_GT(parsed, 1000);
  EXPECT_GT(accepted, 100);
}

TEST(RequestFuzzTest, OnlyIssuedTokensAreAccepted) {
  auto sel = std::make_shared<ResolvedSelection>();
  sel->Add({"vqa-v2", "train", "zh"}, 700);
  sel->Add({"vqa-v2", "validation", "zh"}, 300);
  sel->digest = ContentHash("selection");
  auto plan = StreamPlan::Create(sel, {3, 8, false, {true, 17, 2}}, "00112233445566778899aabbccddeeff",
                                 "fuzz-key-0123456789");
  ASSERT_TRUE(plan.ok());
  std::mt19937_64 rng(7);
  for (int i = 0; i < 20000; ++i) {
    const uint64_t pos = rng() % (plan->shard_size() + 1);
    const std::string token = plan->Token(pos);
    ASSERT_EQ(*plan->Resume(token), pos);
    std::string bad = (i % 3 == 0) ? RandomBytes(rng, 120) : token;
    if (i % 3 != 0) {
      size_t at = rng() % bad.size();
      bad[at] = static_cast<char>(bad[at] ^ (1 + rng() % 255));
    }
    if (bad == token) continue;
    auto r = plan->Resume(bad);
    EXPECT_FALSE(r.ok()) << "a token the server did not issue was accepted";
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  }
}

TEST(RequestFuzzTest, HeldOutValuesConvertAndUnknownOnesAreNamed) {
  v1::Selection in;
  SelectionSpec out;
  in.set_held_out(v1::HELD_OUT_EXCLUDE);
  ASSERT_TRUE(FromProto(in, &out).ok());
  EXPECT_EQ(out.held_out, SelectionSpec::HeldOut::kExclude);
  in.set_held_out(v1::HELD_OUT_ONLY);
  ASSERT_TRUE(FromProto(in, &out).ok());
  EXPECT_EQ(out.held_out, SelectionSpec::HeldOut::kOnly);
  in.set_held_out(static_cast<v1::HeldOut>(7));
  absl::Status s = FromProto(in, &out);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("selection.held_out: unknown value 7 (known: HELD_OUT_UNSPECIFIED"),
            absl::string_view::npos)
      << s;
}

}  // namespace
}  // namespace m3serve::server
