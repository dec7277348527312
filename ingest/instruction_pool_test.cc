#include "ingest/instruction_pool.h"

#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ingest/test_util.h"

namespace m3serve::ingest {
namespace {

using ::m3serve::ingest::testing::TempDir;
using ::m3serve::ingest::testing::WriteFile;
using ::m3serve::testing::IsOk;
using ::m3serve::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(InstructionPoolTest, LoadsEveryKnownShape) {
  TempDir dir;
  const auto p = [&](const char* name) { return (dir.path() / name).string(); };
  WriteFile(p("one.json"), "[\"A.\", \"B.\"]");
  WriteFile(p("pretty.json"), "[\n  \"A.\",\n  \"B.\"\n]\n");
  WriteFile(p("object.json"), "{\"instructions\": [\"A.\"]}");
  WriteFile(p("fr.jsonl"),
            "\xEF\xBB\xBF\"A.\"\r\n{\"instruction\": \"B.\"}\n\n{\"task\": \"other\", \"instruction\": \"X.\"}\n"
            "{\"vqa-v2\": [\"C.\", \"D.\"]}\n");
  EXPECT_THAT(*LoadInstructionPool(p("one.json"), "t"), ElementsAre("A.", "B."));
  EXPECT_THAT(*LoadInstructionPool(p("pretty.json"), "t"), ElementsAre("A.", "B."));
  EXPECT_THAT(*LoadInstructionPool(p("object.json"), "t"), ElementsAre("A."));
  EXPECT_THAT(*LoadInstructionPool(p("fr.jsonl"), "vqa-v2"), ElementsAre("A.", "B.", "C.", "D."));
}

TEST(InstructionPoolTest, EveryDefectNamesTheFileAndLine) {
  TempDir dir;
  const std::string json = (dir.path() / "instructions.json").string();
  const std::string jsonl = (dir.path() / "fr.jsonl").string();
  struct Case {
    const std::string* path;
    std::string content;
    std::string message;
  } cases[] = {
      {&json, "[\"A.\", null]", json + ": instruction entry 1 is not a string"},
      {&json, "[\"A.\"", json + ": not valid JSON"},
      {&json, "\"A.\"", json + ": expected a JSON array of strings"},
      {&json, "[]", json + ": holds no instructions"},
      {&jsonl, "\"A.\"\n{broken\n", jsonl + ":2: not valid JSON"},
      {&jsonl, "\"A.\"\n42\n", jsonl + ":2: expected a string or an object"},
      {&jsonl, "{\"prompt\": \"A.\"}\n", jsonl + ":1: no \"instruction\", \"instructions\" or \"t\" field"},
      {&jsonl, "{\"instruction\": \"\"}\n", jsonl + ":1: \"instruction\" is an empty string"},
      {&jsonl, "{\"task\": \"other\", \"instruction\": \"A.\"}\n", jsonl + ": holds no instructions for task t"},
  };
  for (const Case& c : cases) {
    WriteFile(*c.path, c.content);
    EXPECT_THAT(LoadInstructionPool(*c.path, "t"),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(c.message)))
        << c.content;
  }
  EXPECT_THAT(LoadInstructionPool((dir.path() / "missing.json").string(), "t"),
              StatusIs(absl::StatusCode::kNotFound));
}

TEST(InstructionPoolTest, CheckInstructionIsTheOneRule) {
  InstructionSource none{false, "the task folder x has no instructions.json", {}};
  InstructionSource pool{true, "", {"HYPO"}};
  DraftInstance own;
  own.instruction = "Describe.";
  EXPECT_THAT(CheckInstruction(own, none), IsOk());
  DraftInstance empty;
  EXPECT_THAT(CheckInstruction(empty, none),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("missing instruction: the row has none, and the task folder x")));
  EXPECT_THAT(CheckInstruction(empty, pool), StatusIs(absl::StatusCode::kInvalidArgument,
                                                      HasSubstr("use [HYPO]")));
  empty.template_vars = {{"HYPO", "a dog runs"}};
  EXPECT_THAT(CheckInstruction(empty, pool), IsOk());
  DraftInstance placeholder;
  placeholder.instruction = "Is [HYPO] right?";
  EXPECT_THAT(CheckInstruction(placeholder, none), StatusIs(absl::StatusCode::kInvalidArgument));
  placeholder.template_vars = {{"HYPO", "x"}};
  EXPECT_THAT(CheckInstruction(placeholder, none), IsOk());
  EXPECT_THAT(PlaceholdersIn({"a", "b [HYPO]"}), ElementsAre("HYPO"));
}

}  // namespace
}  // namespace m3serve::ingest
