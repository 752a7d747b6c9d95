// Registry entries of every error-feedback memory (one function per file in this folder).
#pragma once

#include "quant/registry.h"

namespace gradzip::quant {

const MemoryEntry& none_memory_entry();
const MemoryEntry& ef_memory_entry();
const MemoryEntry& dgc_memory_entry();
const MemoryEntry& ef21_memory_entry();

/// The text of an ef scale in a spec ("%.9g": parses back to the same float).
std::string ef_scale_text(float scale);

}  // namespace gradzip::quant
