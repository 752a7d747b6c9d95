// Registry entries of every CPU codec (one function per codec file in this folder).
#pragma once

#include "quant/registry.h"

namespace gradzip::quant {

const CodecEntry& identity_entry();
// Sparse codecs (quant/sparse.h).
const CodecEntry& topk_entry();

}  // namespace gradzip::quant
