// NAME
//   yaml_tree.h - a small YAML/JSON document tree built on libyaml's event parser
// DESCRIPTION
//   Manifests are read with libyaml (the C parser that PyYAML and many others use, fuzzed by
//   OSS-Fuzz) instead of yaml-cpp 0.7, which never returns on some malformed input (a file that
//   is only "," is enough). Only what manifests need: maps, sequences and scalars. Aliases are
//   refused (no billion-laughs expansion); depth and node count are bounded.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kuberelay::policy::yaml {

class Node {
public:
  enum class Kind : uint8_t { Undefined, Null, Scalar, Map, Sequence };

  Node() = default;
  Kind kind() const { return kind_; }
  bool IsDefined() const { return kind_ != Kind::Undefined; }
  bool IsNull() const { return kind_ == Kind::Null; }
  bool IsScalar() const { return kind_ == Kind::Scalar; }
  bool IsMap() const { return kind_ == Kind::Map; }
  bool IsSequence() const { return kind_ == Kind::Sequence; }
  explicit operator bool() const { return IsDefined(); }

  const std::string& Scalar() const { return scalar_; }
  size_t size() const {
    return kind_ == Kind::Map ? map_.size() : kind_ == Kind::Sequence ? seq_.size() : 0;
  }
  // Map lookup; an undefined node when absent or when this is not a map.
  const Node& operator[](std::string_view key) const;
  // Sequence element; an undefined node when out of range.
  const Node& operator[](size_t index) const;
  const std::vector<std::pair<std::string, Node>>& entries() const { return map_; }
  size_t line() const { return line_; }

private:
  friend class TreeBuilder;
  Kind kind_ = Kind::Undefined;
  std::string scalar_;
  std::vector<std::pair<std::string, Node>> map_;
  std::vector<Node> seq_;
  size_t line_ = 0;
};

struct ParseResult {
  std::vector<Node> documents;
  std::string error;  // "line 3: did not find expected key"; documents empty then
};

ParseResult parseAll(std::string_view text);

}  // namespace kuberelay::policy::yaml
