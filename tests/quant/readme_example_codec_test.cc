// README.md's "Adding a codec" section quotes the real steps: its code block is exactly
// the example codec tests/add_codec/mycodec.cc, and its codec-list row is a valid row for
// the next free wire id. The steps themselves are run by the ctest
// add_codec.readme_steps (tests/add_codec/): it applies them to a copy of the tree, builds
// it and checks the added codec (tests/add_codec/mycodec_check.cc).
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>

#include "quant/registry.h"

namespace gradzip::quant {
namespace {

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << path;
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

/// The README's "Adding a codec" section (up to the next "## " heading).
std::string adding_a_codec_section() {
  const std::string readme = read_text(GRADZIP_SOURCE_DIR "/README.md");
  const std::string heading = "\n## Adding a codec\n";
  const std::size_t at = readme.find(heading);
  if (at == std::string::npos) return "<missing " + heading + ">";
  const std::size_t end = readme.find("\n## ", at + heading.size());
  return readme.substr(at, end == std::string::npos ? std::string::npos : end - at);
}

TEST(ReadmeExample, ReadmeQuotesTheExampleCodecFile) {
  const std::string example = read_text(GRADZIP_SOURCE_DIR "/tests/add_codec/mycodec.cc");
  const std::string section = adding_a_codec_section();
  const std::string begin = "```cpp\n";
  const std::size_t b = section.find(begin);
  ASSERT_NE(b, std::string::npos) << "no ```cpp block in README.md's 'Adding a codec'";
  const std::size_t e = section.find("```\n", b + begin.size());
  ASSERT_NE(e, std::string::npos);
  EXPECT_GT(example.size(), 1000u);
  EXPECT_EQ(section.substr(b + begin.size(), e - b - begin.size()), example)
      << "README.md's 'Adding a codec' block must equal tests/add_codec/mycodec.cc";
}

TEST(ReadmeExample, ReadmeRowIsTheNextFreeRowOfTheCodecList) {
  const std::string section = adding_a_codec_section();
  std::smatch m;
  const std::regex row(R"(\nGRADZIP_CODEC\((k[A-Za-z0-9]+), ([0-9]+), ([a-z0-9_]+), (CUDA|CPU_ONLY)\)\n)");
  ASSERT_TRUE(std::regex_search(section, m, row)) << "no codec-list row in README.md's 'Adding a codec'";
  EXPECT_EQ(m[1].str(), "kMyCodec");
  EXPECT_EQ(m[3].str(), "mycodec");
  EXPECT_EQ(m[4].str(), "CPU_ONLY") << "the example has no CUDA twin";
  int max_id = 0;
  for (const auto* e : codec_entries()) max_id = std::max(max_id, static_cast<int>(e->id));
  EXPECT_EQ(std::stoi(m[2].str()), max_id + 1) << "the README's row must take the next free wire id";
  // The row goes at the end of the list, which ends with a row (no trailing #undef).
  const std::string list = read_text(GRADZIP_SOURCE_DIR "/quant/codecs/codec_list.inc");
  const std::size_t last = list.rfind("\nGRADZIP_CODEC(");
  ASSERT_NE(last, std::string::npos);
  EXPECT_EQ(list.find('\n', last + 1), list.size() - 1) << "quant/codecs/codec_list.inc must end with its last row";
}

}  // namespace
}  // namespace gradzip::quant
