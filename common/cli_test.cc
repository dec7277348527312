#include "common/cli.h"

#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace m3serve {
namespace {

using ::m3serve::testing::IsOk;
using ::m3serve::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

struct Args {
  explicit Args(std::vector<std::string> a) : store(std::move(a)) {
    for (auto& s : store) ptrs.push_back(s.data());
  }
  int argc() { return static_cast<int>(ptrs.size()); }
  char** argv() { return ptrs.data(); }
  std::vector<std::string> store;
  std::vector<char*> ptrs;
};

TEST(FlagSetTest, ParsesAllForms) {
  std::string db;
  int64_t scale = 1;
  bool json = false, tty = true;
  std::vector<std::string> tasks{"default-task"};
  FlagSet flags("t", "d");
  flags.String("db", &db, "store");
  flags.Int("scale", &scale, "scale");
  flags.Bool("json", &json, "json");
  flags.Bool("tty", &tty, "tty");
  flags.List("tasks", &tasks, "tasks");
  Args a({"prog", "cmd", "--db", "/x", "src1", "--scale=3", "--json", "--no-tty",
          "--tasks", "a,b", "--tasks=c", "--", "--literal"});
  std::vector<std::string> pos;
  ASSERT_THAT(flags.Parse(a.argc(), a.argv(), 2, &pos), IsOk());
  EXPECT_EQ(db, "/x");
  EXPECT_EQ(scale, 3);
  EXPECT_TRUE(json);
  EXPECT_FALSE(tty);
  EXPECT_THAT(tasks, ElementsAre("a", "b", "c"));
  EXPECT_THAT(pos, ElementsAre("src1", "--literal"));
}

TEST(FlagSetTest, ErrorsNameTheFlag) {
  int64_t scale = 1;
  FlagSet flags("t", "d");
  flags.Int("scale", &scale, "scale");
  std::vector<std::string> pos;
  Args bad({"p", "--scale", "x"});
  EXPECT_THAT(flags.Parse(bad.argc(), bad.argv(), 1, &pos),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--scale")));
  Args unknown({"p", "--bogus"});
  EXPECT_THAT(flags.Parse(unknown.argc(), unknown.argv(), 1, &pos),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("'--bogus'")));
  Args missing({"p", "--scale"});
  EXPECT_THAT(flags.Parse(missing.argc(), missing.argv(), 1, &pos),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("needs a value")));
}

TEST(FlagSetTest, HelpListsFlagsAndDefaults) {
  int64_t scale = 4;
  FlagSet flags("tool sub", "Does things.");
  flags.Int("scale", &scale, "how big");
  std::vector<std::string> pos;
  Args a({"p", "--help"});
  ASSERT_THAT(flags.Parse(a.argc(), a.argv(), 1, &pos), IsOk());
  EXPECT_TRUE(flags.help_requested());
  EXPECT_THAT(flags.Help(), HasSubstr("--scale N"));
  EXPECT_THAT(flags.Help(), HasSubstr("(default: 4)"));
}

}  // namespace
}  // namespace m3serve
