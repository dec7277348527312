#include "common/base64.h"

#include <array>
#include <cstdint>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace m3serve {
namespace {

constexpr char kAlphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

constexpr std::array<int8_t, 256> MakeTable() {
  std::array<int8_t, 256> t{};
  for (auto& v : t) v = -1;
  for (int i = 0; i < 64; ++i) t[static_cast<uint8_t>(kAlphabet[i])] = static_cast<int8_t>(i);
  return t;
}
constexpr std::array<int8_t, 256> kTable = MakeTable();

std::string DescribeChar(unsigned char c) {
  if (c == ' ' || c == '\n' || c == '\r' || c == '\t') {
    return absl::StrFormat("whitespace (0x%02x)", c);
  }
  if (c >= 0x21 && c < 0x7f) return absl::StrFormat("character '%c'", c);
  return absl::StrFormat("byte 0x%02x", c);
}

}  // namespace

absl::Status Base64Decode(absl::string_view in, std::string* out) {
  out->clear();
  size_t base = 0;
  if (in.substr(0, 5) == "data:") {
    size_t comma = in.find(',');
    if (comma == absl::string_view::npos ||
        in.substr(0, comma).find(";base64") == absl::string_view::npos) {
      return absl::InvalidArgumentError("invalid base64: data URI without ';base64,'");
    }
    base = comma + 1;
    in.remove_prefix(comma + 1);
  }
  if (in.empty()) return absl::InvalidArgumentError("invalid base64: empty string");
  const auto* p = reinterpret_cast<const unsigned char*>(in.data());
  const size_t n = in.size();
  // Validate characters first so the error names the exact offset.
  size_t pad = 0;
  if (n >= 1 && p[n - 1] == '=') pad = (n >= 2 && p[n - 2] == '=') ? 2 : 1;
  if (n % 4 != 0) {
    // Find the first bad character, if any, for a better message.
    for (size_t i = 0; i < n; ++i) {
      if (kTable[p[i]] < 0 && p[i] != '=') {
        return absl::InvalidArgumentError(absl::StrCat(
            "invalid base64: ", DescribeChar(p[i]), " at offset ", base + i));
      }
    }
    return absl::InvalidArgumentError(absl::StrCat(
        "invalid base64: length ", n, " is not a multiple of 4 (missing or extra padding)"));
  }
  out->resize(n / 4 * 3);
  auto* o = reinterpret_cast<unsigned char*>(out->data());
  size_t w = 0;
  const size_t body = n - (pad ? 4 : 0);
  for (size_t i = 0; i < body; i += 4) {
    int a = kTable[p[i]], b = kTable[p[i + 1]], c = kTable[p[i + 2]], d = kTable[p[i + 3]];
    if ((a | b | c | d) < 0) {
      for (size_t k = i; k < i + 4; ++k) {
        if (kTable[p[k]] < 0) {
          return absl::InvalidArgumentError(absl::StrCat(
              "invalid base64: ", p[k] == '=' ? std::string("padding '='") : DescribeChar(p[k]),
              " at offset ", base + k));
        }
      }
    }
    uint32_t v = (uint32_t(a) << 18) | (uint32_t(b) << 12) | (uint32_t(c) << 6) | uint32_t(d);
    o[w++] = static_cast<unsigned char>(v >> 16);
    o[w++] = static_cast<unsigned char>(v >> 8);
    o[w++] = static_cast<unsigned char>(v);
  }
  if (pad) {
    size_t i = n - 4;
    int a = kTable[p[i]], b = kTable[p[i + 1]];
    int c = pad == 2 ? 0 : kTable[p[i + 2]];
    for (size_t k = i; k < i + 4 - pad; ++k) {
      if (kTable[p[k]] < 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            "invalid base64: ", p[k] == '=' ? std::string("padding '='") : DescribeChar(p[k]),
            " at offset ", base + k));
      }
    }
    uint32_t v = (uint32_t(a) << 18) | (uint32_t(b) << 12) | (uint32_t(c) << 6);
    o[w++] = static_cast<unsigned char>(v >> 16);
    if (pad == 1) o[w++] = static_cast<unsigned char>(v >> 8);
  }
  out->resize(w);
  return absl::OkStatus();
}

std::string Base64Encode(absl::string_view in) {
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  const auto* p = reinterpret_cast<const unsigned char*>(in.data());
  size_t i = 0;
  for (; i + 3 <= in.size(); i += 3) {
    uint32_t v = (uint32_t(p[i]) << 16) | (uint32_t(p[i + 1]) << 8) | p[i + 2];
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.push_back(kAlphabet[(v >> 6) & 63]);
    out.push_back(kAlphabet[v & 63]);
  }
  if (size_t rest = in.size() - i; rest > 0) {
    uint32_t v = uint32_t(p[i]) << 16;
    if (rest == 2) v |= uint32_t(p[i + 1]) << 8;
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.push_back(rest == 2 ? kAlphabet[(v >> 6) & 63] : '=');
    out.push_back('=');
  }
  return out;
}

}  // namespace m3serve
