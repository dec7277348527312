#include "common/json_writer.h"

#include "gtest/gtest.h"

namespace m3serve {
namespace {

TEST(JsonWriterTest, WritesNestedCompact) {
  JsonWriter w;
  w.BeginObject().Key("n").Uint(3).Key("a").BeginArray().String("x").Int(-1).Bool(true).Null()
      .EndArray().Key("o").BeginObject().EndObject().EndObject();
  EXPECT_EQ(w.str(), R"({"n":3,"a":["x",-1,true,null],"o":{}})");
}

TEST(JsonWriterTest, EscapesAndSanitizes) {
  std::string out;
  AppendJsonString(&out, "q\"b\\n\n\x01 \xE4\xB8\xAD \xFF");
  EXPECT_EQ(out, "\"q\\\"b\\\\n\\n\\u0001 \xE4\xB8\xAD \xEF\xBF\xBD\"");
}

TEST(JsonWriterTest, PrettyPrints) {
  JsonWriter w(2);
  w.BeginObject().Key("a").BeginArray().Uint(1).EndArray().EndObject();
  EXPECT_EQ(w.str(), "{\n  \"a\": [\n    1\n  ]\n}");
}

}  // namespace
}  // namespace m3serve
