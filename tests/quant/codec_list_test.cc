// The codec list (quant/codecs/codec_list.inc) is the one place a codec is registered:
// each row's wire id must be the id its entry (written in the codec's file) declares,
// names and ids must be unique, and the registry must hold exactly the rows, in order.
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "quant/codecs/codecs.h"
#include "quant/registry.h"
#include "tests/quant/codec_test_util.h"

namespace gradzip::quant {
namespace {

struct Row {
  const CodecEntry* entry;
  CodecId listed_id;
  int wire_id;
  const char* stem;
};

std::vector<Row> rows() {
  return {
#define GRADZIP_CODEC(enumerator, wire_id, stem, twin) {&stem##_entry(), CodecId::enumerator, wire_id, #stem},
#include "quant/codecs/codec_list.inc"
#undef GRADZIP_CODEC
  };
}

TEST(CodecList, EachRowsEntryDeclaresTheRowsWireId) {
  for (const Row& r : rows()) {
    EXPECT_EQ(static_cast<int>(r.listed_id), r.wire_id) << r.stem;
    EXPECT_EQ(r.entry->id, r.listed_id) << r.stem << "_entry() in quant/codecs/" << r.stem
                                        << ".cc declares wire id " << static_cast<int>(r.entry->id)
                                        << " but its row in codec_list.inc says " << r.wire_id;
  }
}

TEST(CodecList, NamesAndWireIdsAreUnique) {
  std::set<std::string> names;
  std::set<int> ids;
  for (const Row& r : rows()) {
    EXPECT_TRUE(names.insert(r.entry->name).second) << "duplicate codec name " << r.entry->name;
    EXPECT_TRUE(ids.insert(r.wire_id).second) << "duplicate wire id " << r.wire_id;
    EXPECT_GT(r.wire_id, 0) << r.stem;
    EXPECT_LT(r.wire_id, 256) << r.stem;
  }
}

TEST(CodecList, RegistryHoldsTheRowsInOrder) {
  const std::vector<Row> list = rows();
  const auto& entries = codec_entries();
  ASSERT_EQ(entries.size(), list.size());
  for (std::size_t i = 0; i < list.size(); ++i) {
    EXPECT_EQ(entries[i], list[i].entry) << "row " << i << " (" << list[i].stem << ")";
    EXPECT_EQ(find_codec(list[i].listed_id), list[i].entry) << list[i].stem;
    EXPECT_EQ(find_codec(list[i].entry->name), list[i].entry) << list[i].stem;
  }
}

// A receiver looks codecs up by the wire id in the message: an id no row lists is refused.
TEST(CodecList, UnlistedWireIdIsRefused) {
  int unlisted = 1;
  while (find_codec(static_cast<CodecId>(unlisted)) != nullptr) ++unlisted;
  const std::vector<std::uint8_t> msg =
      codec_testing::rebuild(static_cast<CodecId>(unlisted), 0, 2, {}, std::vector<std::uint8_t>(8, 0));
  std::vector<float> out(2, 7.0f);
  EXPECT_EQ(decode_any(msg.data(), msg.size(), out.data(), out.size()).code(), Errc::kUnknownCodec) << unlisted;
  EXPECT_EQ(out, std::vector<float>(2, 7.0f));
}

}  // namespace
}  // namespace gradzip::quant
