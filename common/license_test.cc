#include "common/license.h"

#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace m3serve {
namespace {

using ::m3serve::testing::StatusIs;
using ::testing::HasSubstr;

TEST(LicenseTest, EverySpellingIsOneLicense) {
  for (const char* s : {"CC BY 4.0", "CC By 4.0", "CC-BY 4.0", "CC-BY-4.0", "cc-by-4.0", " CC_BY_4.0 "}) {
    EXPECT_EQ(CanonicalLicense(s), "CC-BY-4.0") << s;
  }
  EXPECT_EQ(CanonicalLicense("CC By 3.0"), "CC-BY-3.0");
  EXPECT_EQ(CanonicalLicense("CC BY-NC-SA"), "CC-BY-NC-SA-4.0");
  EXPECT_EQ(CanonicalLicense("cc-by-nc-sa-4.0"), "CC-BY-NC-SA-4.0");
  EXPECT_EQ(CanonicalLicense("apache-2.0"), "Apache-2.0");
  EXPECT_EQ(CanonicalLicense("Non-commercial"), "LicenseRef-NonCommercial");
  EXPECT_EQ(CanonicalLicense("Custom"), "LicenseRef-Custom");
  EXPECT_EQ(CanonicalLicense("Unknown"), "LicenseRef-Unknown");
  EXPECT_EQ(CanonicalLicense("licenseref-unknown"), "LicenseRef-Unknown");
  // Versions and families stay apart.
  EXPECT_EQ(CanonicalLicense("CC BY 3.0"), "CC-BY-3.0");
  EXPECT_NE(CanonicalLicense("CC-BY-SA-4.0"), CanonicalLicense("CC-BY-4.0"));
  EXPECT_EQ(CanonicalLicense("CC BY 5.0"), std::nullopt);
  EXPECT_EQ(CanonicalLicense("GPL"), std::nullopt);
}

TEST(LicenseTest, UnknownTextIsAnErrorListingTheKnownIds) {
  EXPECT_THAT(ParseLicense("CC BY 5.0", "selection.licenses"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("selection.licenses: 'CC BY 5.0' is not a known license (known: Apache-2.0, ")));
  // Every id is its own canonical form.
  for (const std::string& id : KnownLicenseIds()) EXPECT_EQ(CanonicalLicense(id), id);
}

}  // namespace
}  // namespace m3serve
