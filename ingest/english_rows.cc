#include "ingest/english_rows.h"

#include <simdjson.h>

#include "absl/strings/str_cat.h"
#include "ingest/line_reader.h"

namespace m3serve::ingest {

namespace dom = simdjson::dom;

std::shared_ptr<const EnglishRows> LoadEnglishRows(const std::string& path,
                                                   const std::string& rel_path,
                                                   const ImageCheckOptions& images,
                                                   uint64_t max_line_bytes) {
  auto rows = std::make_shared<EnglishRows>();
  rows->rel_path = rel_path;
  auto reader = LineReader::Open(path, 0, 0, max_line_bytes);
  if (!reader.ok()) {
    rows->file_error = std::string(reader.status().message());
    return rows;
  }
  dom::parser parser;
  LineChunk chunk;
  while (!(*reader)->eof()) {
    absl::Status s = (*reader)->Next(4u << 20, 256, &chunk);
    if (!s.ok()) {
      rows->file_error = std::string(s.message());
      break;
    }
    for (const auto& l : chunk.lines) {
      if (l.oversize) {
        rows->by_line[l.number].error = "line above --max-line-bytes";
        continue;
      }
      absl::string_view text = chunk.text(l);
      if (text.find_first_not_of(" \t") == absl::string_view::npos) continue;
      EnglishRows::Row& row = rows->by_line[l.number];
      dom::element e;
      if (auto err = parser.parse(text.data(), text.size(), false).get(e)) {
        row.error = JsonErrorReason(err);
        continue;
      }
      dom::object obj;
      if (e.get_object().get(obj)) {
        row.error = "not a JSON object";
        continue;
      }
      absl::Status is = ExtractImages(obj, images, &row.images);
      if (!is.ok()) row.error = std::string(is.message());
      dom::element id;
      std::string_view sid;
      int64_t iid;
      if (!obj["id"].get(id)) {
        if (!id.get_string().get(sid)) rows->line_of_id[std::string(sid)] = l.number;
        else if (!id.get_int64().get(iid)) rows->line_of_id[absl::StrCat(iid)] = l.number;
      }
    }
  }
  return rows;
}

}  // namespace m3serve::ingest
