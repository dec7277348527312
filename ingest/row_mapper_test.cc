#include "ingest/row_mapper.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ingest/test_util.h"

namespace m3serve::ingest {
namespace {

using ::m3serve::ingest::testing::ImageB64;
using ::m3serve::ingest::testing::ImageBytes;
using ::m3serve::ingest::testing::TempDir;
using ::m3serve::ingest::testing::WriteFile;
using ::m3serve::testing::IsOk;
using ::m3serve::testing::StatusIs;
using ::testing::HasSubstr;

class RowMapperTest : public ::testing::Test {
 protected:
  // Map `json` (with $IMG / $IMG2 replaced by base64 images).
  absl::Status Map(const std::string& json, Mapping mapping, std::vector<DraftInstance>* out,
                   const TaskAux* aux = nullptr, const EnglishRows* en = nullptr, uint64_t line = 1) {
    std::string text = absl::StrReplaceAll(json, {{"$IMG2", ImageB64(2)}, {"$IMG", ImageB64(1)}});
    simdjson::dom::element e;
    auto err = parser_.parse(text).get(e);
    EXPECT_FALSE(err) << simdjson::error_message(err);
    RowContext ctx;
    ctx.mapping = mapping;
    ctx.aux = aux;
    ctx.english = en;
    ctx.line = line;
    return MapRow(e, ctx, out);
  }
  std::string Outputs(const std::string& json, Mapping mapping) {
    std::vector<DraftInstance> out;
    absl::Status s = Map(json, mapping, &out);
    EXPECT_THAT(s, IsOk());
    return out.empty() ? "" : out[0].outputs;
  }
  simdjson::dom::parser parser_;
};

TEST_F(RowMapperTest, CocoYieldsOneInstancePerTarget) {
  std::vector<DraftInstance> out;
  ASSERT_THAT(Map(R"({"image": "$IMG", "meta": {"targets": ["a cat", "a dog", "a bird"], "image_id": 7}})",
                  Mapping::kCoco, &out), IsOk());
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[1].outputs, "a dog");
  EXPECT_EQ(out[2].inputs, "");
  EXPECT_EQ(out[0].images.size(), 1u);
  EXPECT_EQ(out[0].images[0], out[2].images[0]);  // decoded once, shared
  EXPECT_EQ(out[0].images[0]->hash, ContentHash(ImageBytes(1)));
  EXPECT_EQ(out[0].meta_json, R"({"targets":["a cat","a dog","a bird"],"image_id":7})");
}

TEST_F(RowMapperTest, VqaV2AnswerFallbacks) {
  const char* row = R"({"question": "q?", "img_str": "$IMG", "original_answer": "2", "paraphrased_answer": "%s"})";
  auto with = [&](const char* para) { return absl::StrReplaceAll(row, {{"%s", para}}); };
  EXPECT_EQ(Outputs(with("There are two."), Mapping::kVqaV2), "There are two.");
  EXPECT_EQ(Outputs(with("Sorry, I cannot tell."), Mapping::kVqaV2), "The answer is 2.");
  EXPECT_EQ(Outputs(with("It is not answerable."), Mapping::kVqaV2), "The answer is 2.");
  EXPECT_EQ(Outputs(with("The image descriptions do not say."), Mapping::kVqaV2), "The answer is 2.");
  std::vector<DraftInstance> out;
  ASSERT_THAT(Map(with("x"), Mapping::kVqaV2, &out), IsOk());
  EXPECT_EQ(out[0].inputs, "q?");
}

TEST_F(RowMapperTest, OkvqaAndAokvqaAndViquae) {
  EXPECT_EQ(Outputs(R"({"question": "q", "image_str": "$IMG", "answer": "tennis", "paraphrased_answer": "sorry, no idea"})",
                    Mapping::kOkvqa), "The answer is tennis.");
  EXPECT_EQ(Outputs(R"({"question": "q", "image_str": "$IMG", "answer": "tennis", "paraphrased_answer": "They play tennis."})",
                    Mapping::kOkvqa), "They play tennis.");
  EXPECT_EQ(Outputs(R"({"question": "q", "image_str": "$IMG", "rationale": "Rackets are visible.", "answer": "tennis"})",
                    Mapping::kAokvqa), "Rackets are visible. So the answer is tennis.");
  EXPECT_EQ(Outputs(R"({"question": "q", "img_str": "$IMG", "answer": "a", "paraphrased_answer": "It is A."})",
                    Mapping::kViquae), "It is A.");
}

TEST_F(RowMapperTest, VistKeepsImageOrderAndJoinsSentences) {
  std::vector<DraftInstance> out;
  ASSERT_THAT(Map(R"({"images": ["$IMG", "$IMG2", "$IMG"], "sentences": ["One.", "Two.", "Three."]})",
                  Mapping::kVist, &out), IsOk());
  ASSERT_EQ(out.size(), 1u);
  ASSERT_EQ(out[0].images.size(), 3u);
  EXPECT_EQ(out[0].images[0]->hash, ContentHash(ImageBytes(1)));
  EXPECT_EQ(out[0].images[1]->hash, ContentHash(ImageBytes(2)));
  EXPECT_EQ(out[0].images[2]->hash, ContentHash(ImageBytes(1)));
  EXPECT_EQ(out[0].outputs, "One. Two. Three.");
}

TEST_F(RowMapperTest, SnliVeLabelsAndHypothesis) {
  std::vector<DraftInstance> out;
  ASSERT_THAT(Map(R"({"hypothesis": "two dogs run", "image_base64_str": "$IMG", "label": "entailment"})",
                  Mapping::kSnliVe, &out), IsOk());
  EXPECT_EQ(out[0].outputs, "yes");
  EXPECT_EQ(out[0].instruction, "");
  ASSERT_EQ(out[0].template_vars.size(), 1u);
  EXPECT_EQ(out[0].template_vars[0].first, "HYPO");
  EXPECT_EQ(out[0].template_vars[0].second, "two dogs run");
  EXPECT_EQ(Outputs(R"({"hypothesis": "h", "image_base64_str": "$IMG", "label": "contradiction"})",
                    Mapping::kSnliVe), "no");
  EXPECT_EQ(Outputs(R"({"hypothesis": "h", "image_base64_str": "$IMG", "label": "neutral", "rationale": "unclear"})",
                    Mapping::kSnliVe), "maybe. unclear");
  out.clear();
  ASSERT_THAT(Map(R"({"instruction": "Is [HYPO] true?", "hypothesis": "h1", "image_base64_str": "$IMG", "label": "neutral"})",
                  Mapping::kSnliVe, &out), IsOk());
  EXPECT_EQ(out[0].instruction, "Is h1 true?");
}

TEST_F(RowMapperTest, WinogroundAndGenericKeys) {
  std::vector<DraftInstance> out;
  ASSERT_THAT(Map(R"({"input": "caption?", "output": "yes", "image_str": "$IMG"})", Mapping::kGeneric, &out),
              IsOk());
  EXPECT_EQ(out[0].inputs, "caption?");
  EXPECT_EQ(out[0].outputs, "yes");
  EXPECT_EQ(Outputs(R"({"image": "$IMG", "caption": "一只猫"})", Mapping::kGeneric), "一只猫");
  EXPECT_EQ(Outputs(R"({"instruction": "i", "inputs": "", "image_base64_str": ["$IMG"], "outputs": "o"})",
                    Mapping::kGeneric), "o");
}

TEST_F(RowMapperTest, RephrasedRowsReadMetaKeys) {
  std::vector<DraftInstance> out;
  ASSERT_THAT(Map(R"({"meta": {"instruction": "Rephrased?", "inputs": "in", "image_base64_str": ["$IMG2"]}, "answer": "ans"})",
                  Mapping::kRephrased, &out), IsOk());
  EXPECT_EQ(out[0].instruction, "Rephrased?");
  EXPECT_EQ(out[0].inputs, "in");
  EXPECT_EQ(out[0].outputs, "ans");
  EXPECT_EQ(out[0].images[0]->hash, ContentHash(ImageBytes(2)));
  EXPECT_EQ(out[0].meta_json, R"({"instruction":"Rephrased?","inputs":"in"})");
}

TEST_F(RowMapperTest, EveryImageKeyAsStringOrList) {
  for (const char* key : {"image_base64_str", "images", "image", "img_str", "image_str", "video_str"}) {
    for (const char* shape : {"\"$IMG\"", "[\"$IMG\", \"$IMG2\"]"}) {
      std::vector<DraftInstance> out;
      std::string row = absl::StrCat(R"({")", key, R"(": )", shape, R"(, "outputs": "o"})");
      ASSERT_THAT(Map(row, Mapping::kGeneric, &out), IsOk()) << row;
      EXPECT_EQ(out[0].images.size(), shape[0] == '[' ? 2u : 1u) << row;
    }
  }
  std::vector<DraftInstance> out;
  ASSERT_THAT(Map(R"({"meta": {"image_base64_str": "$IMG"}, "outputs": "o"})", Mapping::kGeneric, &out), IsOk());
  EXPECT_EQ(out[0].images.size(), 1u);
}

TEST_F(RowMapperTest, ImagenetClassFromMappingFile) {
  TempDir dir;
  WriteFile(dir.path() / "mapping.txt", "n01440764 tench, Tinca tinca\nn01443537 goldfish\n");
  auto aux = LoadTaskAux(dir.str());
  ASSERT_THAT(aux, IsOk());
  std::vector<DraftInstance> out;
  ASSERT_THAT(Map(R"({"img_str": "$IMG", "label": 2})", Mapping::kImagenet, &out, &*aux), IsOk());
  EXPECT_EQ(out[0].outputs, "goldfish");
  out.clear();
  EXPECT_THAT(Map(R"({"img_str": "$IMG", "label": 9})", Mapping::kImagenet, &out, &*aux),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("class index 9 is not in mapping.txt")));
  EXPECT_EQ(Outputs(R"({"img_str": "$IMG", "outputs": "open answer"})", Mapping::kImagenet), "open answer");
}

TEST_F(RowMapperTest, SsClassFromLabelsJson) {
  TempDir dir;
  WriteFile(dir.path() / "labels.json", R"({"Pushing something": "0", "Pulling something": "1"})");
  auto aux = LoadTaskAux(dir.str());
  ASSERT_THAT(aux, IsOk());
  std::vector<DraftInstance> out;
  ASSERT_THAT(Map(R"({"video_str": ["$IMG", "$IMG2"], "label": 1})", Mapping::kSs, &out, &*aux), IsOk());
  EXPECT_EQ(out[0].outputs, "Pulling something");  // too few classes for options
  EXPECT_EQ(out[0].images.size(), 2u);

  WriteFile(dir.path() / "labels.json",
            R"({"Pushing something": "0", "Pulling something": "1", "Dropping something": "2",
                "Lifting something": "3", "Turning something": "4"})");
  auto five = LoadTaskAux(dir.str());
  ASSERT_THAT(five, IsOk());
  out.clear();
  ASSERT_THAT(Map(R"({"video_str": ["$IMG"], "label": "3"})", Mapping::kSs, &out, &*five, nullptr, 12), IsOk());
  // Lettered options, the true class among them, outputs "(X) class".
  const std::string& in = out[0].inputs;
  EXPECT_THAT(in, HasSubstr("(A) "));
  EXPECT_THAT(in, HasSubstr("(D) "));
  EXPECT_THAT(in, HasSubstr("Lifting something"));
  ASSERT_EQ(out[0].outputs.size(), std::string("(X) Lifting something").size());
  EXPECT_THAT(out[0].outputs, ::testing::EndsWith(") Lifting something"));
  EXPECT_THAT(in, HasSubstr(out[0].outputs));
  // Deterministic for the same line.
  std::vector<DraftInstance> again;
  ASSERT_THAT(Map(R"({"video_str": ["$IMG"], "label": "3"})", Mapping::kSs, &again, &*five, nullptr, 12), IsOk());
  EXPECT_EQ(again[0].inputs, in);
}

TEST_F(RowMapperTest, TranslatedRowsJoinEnglishImages) {
  EnglishRows en;
  en.rel_path = "data/vqa-v2/train_500.jsonl";
  auto img = DecodeImage(ImageB64(2), {});
  ASSERT_THAT(img, IsOk());
  en.by_line[3].images = {*img};
  en.by_line[4].error = "missing image: ...";
  std::vector<DraftInstance> out;
  ASSERT_THAT(Map(R"({"instruction": "Répondez", "input": "q", "output": "rouge"})", Mapping::kTranslated,
                  &out, nullptr, &en, 3), IsOk());
  EXPECT_EQ(out[0].outputs, "rouge");
  EXPECT_EQ(out[0].images[0]->hash, ContentHash(ImageBytes(2)));
  out.clear();
  EXPECT_THAT(Map(R"({"input": "q", "output": "o"})", Mapping::kTranslated, &out, nullptr, &en, 9),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no English row at line 9")));
  EXPECT_THAT(Map(R"({"input": "q", "output": "o"})", Mapping::kTranslated, &out, nullptr, &en, 4),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("train_500.jsonl:4 has no usable image")));
  en.line_of_id["q-17"] = 3;
  out.clear();
  ASSERT_THAT(Map(R"({"id": "q-17", "input": "q", "output": "o"})", Mapping::kTranslated, &out, nullptr, &en, 50),
              IsOk());
  EXPECT_EQ(out[0].images.size(), 1u);
}

TEST_F(RowMapperTest, RejectReasonsNameTheKey) {
  std::vector<DraftInstance> out;
  EXPECT_THAT(Map(R"({"question": "q", "answer": "a"})", Mapping::kGeneric, &out),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("missing image: none of the keys image_base64_str, images, image, img_str")));
  EXPECT_THAT(Map(R"({"image_str": "$IMG", "question": "q"})", Mapping::kGeneric, &out),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("missing output")));
  EXPECT_THAT(Map(R"({"image_str": "$IMG", "question": 3, "answer": "a"})", Mapping::kGeneric, &out),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("field 'question': expected a string, got number")));
  EXPECT_THAT(Map(R"({"image_str": ["$IMG", 5], "answer": "a"})", Mapping::kGeneric, &out),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("field 'image_str[1]'")));
  EXPECT_THAT(Map(R"({"img_str": "aGVsbG8=", "answer": "a"})", Mapping::kGeneric, &out),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("field 'img_str': not a decodable image")));
  EXPECT_THAT(Map(R"({"image": "$IMG", "meta": {"targets": []}})", Mapping::kCoco, &out),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("'meta.targets' is an empty list")));
}

TEST_F(RowMapperTest, DecodeImageChecks) {
  ImageCheckOptions tiny;
  tiny.max_pixels = 100;
  EXPECT_THAT(DecodeImage(ImageB64(1), tiny),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("above the limit of 100")));
  ImageCheckOptions full;
  full.full_decode = true;
  auto ok = DecodeImage(ImageB64(3, ".png"), full);
  ASSERT_THAT(ok, IsOk());
  EXPECT_EQ((*ok)->meta.format, ImageFormat::kPng);
  EXPECT_EQ((*ok)->meta.width, 24u);
  EXPECT_EQ((*ok)->meta.height, 16u);
  std::string jpeg = ImageBytes(4);
  EXPECT_THAT(DecodeImage(Base64Encode(jpeg.substr(0, jpeg.size() - 40)), {}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("truncated")));
}

// The failures the issue found: each is now a reject naming the key.
TEST_F(RowMapperTest, RequiredKeysAndVocabulariesAreEnforced) {
  std::vector<DraftInstance> out;
  EXPECT_THAT(Map(R"({"image_base64_str": "$IMG", "label": "entailment"})", Mapping::kSnliVe, &out),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("missing hypothesis: none of the keys hypothesis is present (snli-ve rows need it)")));
  EXPECT_THAT(Map(R"({"hypothesis": "h", "image_base64_str": "$IMG", "label": "perhaps"})", Mapping::kSnliVe, &out),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("field 'label': 'perhaps' is not one of contradiction, entailment, neutral")));
  EXPECT_THAT(Map(R"({"hypothesis": "", "image_base64_str": "$IMG", "label": "neutral"})", Mapping::kSnliVe, &out),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("field 'hypothesis' is empty")));
  EXPECT_EQ(Outputs(R"({"hypothesis": "h", "image_base64_str": "$IMG", "gold_label": "Entailment"})",
                    Mapping::kSnliVe), "yes");
  EXPECT_THAT(Map(R"({"img_str": "$IMG", "original_answer": "2"})", Mapping::kVqaV2, &out),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("missing question: none of the keys question, inputs, input is present")));
  EXPECT_THAT(Map(R"({"img_str": "$IMG", "question": "How many?"})", Mapping::kVqaV2, &out),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("missing answer")));
  TaskAux aux;
  aux.class_to_label = {{"pushing", "0"}, {"pulling", "1"}, {"lifting", "2"}, {"dropping", "3"}};
  aux.label_to_class = {{"0", "pushing"}, {"1", "pulling"}, {"2", "lifting"}, {"3", "dropping"}};
  EXPECT_THAT(Map(R"({"video_str": ["$IMG"], "label": "juggling"})", Mapping::kSs, &out, &aux),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("'juggling' is neither a class nor a label of labels.json")));
  out.clear();
  ASSERT_THAT(Map(R"({"video_str": ["$IMG"], "label": 2})", Mapping::kSs, &out, &aux), IsOk());
  EXPECT_THAT(out[0].outputs, HasSubstr("lifting"));
}

// Over the whole table: a row carrying the first key of every required field
// maps; dropping every key of any one required field is rejected naming it.
TEST_F(RowMapperTest, EveryMappingRejectsAMissingRequiredField) {
  for (const MappingSpec& spec : MappingSpecs()) {
    if (spec.mapping == Mapping::kTranslated) continue;  // needs its English rows (tested above)
    auto value_for = [&](absl::string_view key) -> std::string {
      if (key == "meta.targets" || key == "sentences") return "[\"x\"]";
      for (const auto& v : spec.vocabularies) {
        for (absl::string_view k : v.keys) {
          if (k == key) return absl::StrCat("\"", v.values[0], "\"");
        }
      }
      return "\"x\"";
    };
    auto row = [&](int skip) {
      std::string json = R"({"image_base64_str": "$IMG", "meta": {"image_base64_str": "$IMG")";
      std::string top;
      for (size_t i = 0; i < spec.required.size(); ++i) {
        if (static_cast<int>(i) == skip) continue;
        absl::string_view key = spec.required[i].keys[0];
        if (absl::StartsWith(key, "meta.")) {
          absl::StrAppend(&json, ", \"", key.substr(5), "\": ", value_for(key));
        } else {
          absl::StrAppend(&top, ", \"", key, "\": ", value_for(key));
        }
      }
      return json + "}" + top + "}";
    };
    std::vector<DraftInstance> out;
    EXPECT_THAT(Map(row(-1), spec.mapping, &out), IsOk()) << spec.name << ": " << row(-1);
    for (size_t i = 0; i < spec.required.size(); ++i) {
      EXPECT_THAT(Map(row(static_cast<int>(i)), spec.mapping, &out),
                  StatusIs(absl::StatusCode::kInvalidArgument,
                           HasSubstr(absl::StrCat("missing ", spec.required[i].what, ": "))))
          << spec.name << " without " << spec.required[i].what;
    }
  }
}

}  // namespace
}  // namespace m3serve::ingest
