// Registry entries of every CPU codec: one function per row of quant/codecs/codec_list.inc,
// `<stem>_entry()`, defined in quant/codecs/<stem>.cc.
#pragma once

#include "quant/registry.h"

namespace gradzip::quant {

#define GRADZIP_CODEC(enumerator, wire_id, stem, twin) const CodecEntry& stem##_entry();
#include "quant/codecs/codec_list.inc"
#undef GRADZIP_CODEC

}  // namespace gradzip::quant
