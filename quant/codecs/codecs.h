// Registry entries of every CPU codec (one function per codec file in this folder).
#pragma once

#include "quant/registry.h"

namespace gradzip::quant {

const CodecEntry& identity_entry();
const CodecEntry& fp16_entry();
const CodecEntry& bf16_entry();
const CodecEntry& int8_entry();
const CodecEntry& qsgd_entry();
const CodecEntry& terngrad_entry();
const CodecEntry& sign_entry();
const CodecEntry& scaled_sign_entry();
const CodecEntry& onebit_entry();
const CodecEntry& natural_entry();
// Sparse codecs (quant/sparse.h).
const CodecEntry& topk_entry();
const CodecEntry& randk_entry();
const CodecEntry& threshold_entry();
const CodecEntry& dgc_entry();

}  // namespace gradzip::quant
