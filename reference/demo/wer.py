#!/usr/bin/env python3
"""Word error rate of 'key text' hypotheses against 'key text' references (Kaldi text files).

    python3 reference/demo/wer.py REF_TEXT HYP_TEXT     # prints WER, word errors / words, sentence errors

Keys missing from the hypotheses count as empty hypotheses (every reference word deleted).
"""
import sys


def read(path):
    out = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            key, _, text = line.rstrip("\n").partition(" ")
            if key:
                out[key] = text.split()
    return out


def edit_distance(a, b):
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (x != y))
    return row[-1]


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    ref, hyp = read(sys.argv[1]), read(sys.argv[2])
    errors = sum(edit_distance(words, hyp.get(key, [])) for key, words in ref.items())
    words = sum(len(w) for w in ref.values())
    sentences = sum(hyp.get(key, []) != words_ for key, words_ in ref.items())
    print(f"WER {100 * errors / max(words, 1):.2f}% ({errors}/{words} words), "
          f"sentence errors {sentences}/{len(ref)}")


if __name__ == "__main__":
    main()
