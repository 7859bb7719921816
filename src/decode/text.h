// Token ids -> text, as WeNet's python tokenizers detokenize: the units joined with no separator
// (CharTokenizer), then, for BPE units, "▁" (U+2581) turned into a space and the ends trimmed
// (BpeTokenizer). Applying the BPE step to char models changes nothing, since their units hold no
// "▁". Special units (<unk>, ...) are written as they are, as WeNet does; blanks never reach here.
#pragma once

#include <string>
#include <vector>

namespace wenet_rt {

std::string tokens_to_text(const std::vector<int>& tokens, const std::vector<std::string>& units);

// Appends the text of the next utterance of a recording (continuous decoding) to `text`: a space
// between them unless the script writes none (CJK: neither side ends in an ASCII letter or digit).
void append_utterance_text(std::string& text, const std::string& more);

}  // namespace wenet_rt
