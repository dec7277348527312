// File: ingest/english_rows.h
//
// The M3IT-80 join: a translated row takes its images from the English row of
// the same task and split (data/<task>/{train,val,test}_500.jsonl), matched by
// "id" when both files carry ids, by line number otherwise. This loads the
// English side once per file: images per line, the line of each id, and why a
// line has no usable image.
#ifndef M3SERVE_INGEST_ENGLISH_ROWS_H_
#define M3SERVE_INGEST_ENGLISH_ROWS_H_

#include <cstdint>
#include <memory>
#include <string>

#include "ingest/row_mapper.h"

namespace m3serve::ingest {

// Read `path` (shown as `rel_path`). A file that cannot be read gives rows
// with file_error set, so every translated row names the reason.
std::shared_ptr<const EnglishRows> LoadEnglishRows(const std::string& path,
                                                   const std::string& rel_path,
                                                   const ImageCheckOptions& images,
                                                   uint64_t max_line_bytes);

}  // namespace m3serve::ingest

#endif  // M3SERVE_INGEST_ENGLISH_ROWS_H_
