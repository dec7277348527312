#include "common/base64.h"

#include <string>

#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace m3serve {
namespace {

using ::m3serve::testing::IsOk;
using ::m3serve::testing::StatusIs;
using ::testing::HasSubstr;

TEST(Base64Test, RoundTripsAllLengths) {
  std::string data;
  for (int len = 0; len < 70; ++len) {
    std::string enc = Base64Encode(data);
    std::string dec;
    if (len == 0) {
      EXPECT_THAT(Base64Decode(enc, &dec), StatusIs(absl::StatusCode::kInvalidArgument));
    } else {
      ASSERT_THAT(Base64Decode(enc, &dec), IsOk()) << len;
      EXPECT_EQ(dec, data);
    }
    data.push_back(static_cast<char>(len * 37 + 11));
  }
}

TEST(Base64Test, KnownVectors) {
  std::string out;
  ASSERT_THAT(Base64Decode("Zm9vYmFy", &out), IsOk());
  EXPECT_EQ(out, "foobar");
  ASSERT_THAT(Base64Decode("Zm9vYg==", &out), IsOk());
  EXPECT_EQ(out, "foob");
  ASSERT_THAT(Base64Decode("Zm9vYmE=", &out), IsOk());
  EXPECT_EQ(out, "fooba");
  EXPECT_EQ(Base64Encode("fooba"), "Zm9vYmE=");
}

TEST(Base64Test, AcceptsDataUriPrefix) {
  std::string out;
  ASSERT_THAT(Base64Decode("data:image/jpeg;base64,Zm9v", &out), IsOk());
  EXPECT_EQ(out, "foo");
}

TEST(Base64Test, RejectsWhitespaceWithOffset) {
  std::string out;
  EXPECT_THAT(Base64Decode("Zm9v\nYmFy", &out),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("whitespace (0x0a) at offset 4")));
}

TEST(Base64Test, RejectsMissingPadding) {
  std::string out;
  EXPECT_THAT(Base64Decode("Zm9vYg", &out),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not a multiple of 4")));
}

TEST(Base64Test, RejectsPaddingInTheMiddle) {
  std::string out;
  EXPECT_THAT(Base64Decode("Zm==YmFy", &out),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("padding '=' at offset 2")));
}

TEST(Base64Test, RejectsUrlSafeAlphabet) {
  std::string out;
  EXPECT_THAT(Base64Decode("ab-_", &out),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("character '-' at offset 2")));
}

TEST(Base64Test, RejectsNonZeroPaddingBits) {
  std::string out;
  // "Zm9vYg==" is "foob"; "Zm9vYh==" sets a bit below the last byte.
  EXPECT_THAT(Base64Decode("Zm9vYh==", &out),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("non-zero padding bits in character 'h' at offset 5")));
  // "Zm9vYmE=" is "fooba"; "Zm9vYmF=" sets a bit below the last byte.
  EXPECT_THAT(Base64Decode("Zm9vYmF=", &out),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("non-zero padding bits in character 'F' at offset 6")));
  // Only the canonical encoding of each one- and two-byte value is accepted:
  // varying the bits below its last byte is refused.
  constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  for (int len = 1; len <= 2; ++len) {
    const int mask = len == 1 ? 0x0F : 0x03;
    for (int v = 0; v < 256; ++v) {
      std::string data(static_cast<size_t>(len), static_cast<char>(v));
      const std::string enc = Base64Encode(data);
      const size_t last = enc.size() - 1 - (len == 1 ? 2 : 1);
      const int index = static_cast<int>(std::string(kAlphabet).find(enc[last]));
      for (int low = 0; low <= mask; ++low) {
        std::string alt = enc;
        alt[last] = kAlphabet[(index & ~mask) | low];
        EXPECT_EQ(Base64Decode(alt, &out).ok(), low == 0) << alt;
      }
    }
  }
}

}  // namespace
}  // namespace m3serve
