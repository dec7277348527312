#include "common/base64.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cstdint>
#include <cstring>

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

// Decoding tables for the four characters of a quad: each gives its 6 bits
// already placed in the three output bytes of a little-endian uint32 (byte 0
// first), so a quad decodes to d0[a] | d1[b] | d2[c] | d3[d]. A character
// outside the alphabet sets bit 24, which no valid quad has.
static_assert(std::endian::native == std::endian::little, "the quad tables assume little-endian");
constexpr uint32_t kInvalid = 1u << 24;
constexpr std::array<uint32_t, 256> MakeQuadTable(int position) {
  std::array<uint32_t, 256> t{};
  for (int c = 0; c < 256; ++c) {
    const int v = kTable[c];
    if (v < 0) {
      t[c] = kInvalid;
      continue;
    }
    const uint32_t u = static_cast<uint32_t>(v);
    switch (position) {
      case 0: t[c] = u << 2; break;
      case 1: t[c] = (u >> 4) | ((u & 15) << 12); break;
      case 2: t[c] = ((u >> 2) << 8) | ((u & 3) << 22); break;
      default: t[c] = u << 16; break;
    }
  }
  return t;
}
constexpr std::array<uint32_t, 256> kQuad0 = MakeQuadTable(0), kQuad1 = MakeQuadTable(1),
                                    kQuad2 = MakeQuadTable(2), kQuad3 = MakeQuadTable(3);

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
  // Decode through a small buffer and append, so the output is written once
  // (resize would zero-fill it first).
  out->reserve(n / 4 * 3);
  constexpr size_t kQuadsPerBlock = 1024;
  unsigned char block[kQuadsPerBlock * 3 + 1];  // +1: each quad stores 4 bytes
  const size_t body = n - (pad ? 4 : 0);
  for (size_t i = 0; i < body;) {
    const size_t end = std::min(body, i + kQuadsPerBlock * 4);
    unsigned char* o = block;
    for (; i < end; i += 4, o += 3) {
      const uint32_t v = kQuad0[p[i]] | kQuad1[p[i + 1]] | kQuad2[p[i + 2]] | kQuad3[p[i + 3]];
      if (v & kInvalid) {
        for (size_t k = i; k < i + 4; ++k) {
          if (kTable[p[k]] < 0) {
            return absl::InvalidArgumentError(absl::StrCat(
                "invalid base64: ", p[k] == '=' ? std::string("padding '='") : DescribeChar(p[k]),
                " at offset ", base + k));
          }
        }
      }
      std::memcpy(o, &v, 4);  // little-endian: bytes 0..2 are the output
    }
    out->append(reinterpret_cast<const char*>(block), static_cast<size_t>(o - block));
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
    // Strict: the bits below the last whole byte must be zero (RFC 4648
    // §3.5), so every byte string has exactly one encoding.
    const bool stray = pad == 2 ? (b & 0x0F) != 0 : (c & 0x03) != 0;
    if (stray) {
      return absl::InvalidArgumentError(absl::StrCat(
          "invalid base64: non-zero padding bits in ", DescribeChar(p[i + (pad == 2 ? 1 : 2)]),
          " at offset ", base + i + (pad == 2 ? 1 : 2), " (not canonical base64)"));
    }
    uint32_t v = (uint32_t(a) << 18) | (uint32_t(b) << 12) | (uint32_t(c) << 6);
    out->push_back(static_cast<char>(v >> 16));
    if (pad == 1) out->push_back(static_cast<char>(v >> 8));
  }
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
