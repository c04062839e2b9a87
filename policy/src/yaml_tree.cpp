#include "kuberelay/policy/yaml_tree.h"

#include <yaml.h>

#include <memory>

namespace kuberelay::policy::yaml {
namespace {

constexpr size_t kMaxDepth = 64;
constexpr size_t kMaxNodes = 1000000;

const Node& undefined() {
  static const Node node;
  return node;
}

// Plain (unquoted) scalars that YAML reads as null.
bool isNullScalar(const yaml_event_t& e) {
  if (e.data.scalar.style != YAML_PLAIN_SCALAR_STYLE) return false;
  std::string_view v(reinterpret_cast<const char*>(e.data.scalar.value), e.data.scalar.length);
  return v.empty() || v == "~" || v == "null" || v == "Null" || v == "NULL";
}

}  // namespace

const Node& Node::operator[](std::string_view key) const {
  if (kind_ != Kind::Map) return undefined();
  for (const auto& [k, v] : map_) {
    if (k == key) return v;
  }
  return undefined();
}

const Node& Node::operator[](size_t index) const {
  if (kind_ != Kind::Sequence || index >= seq_.size()) return undefined();
  return seq_[index];
}

class TreeBuilder {
public:
  static ParseResult parse(std::string_view text) {
    ParseResult out;
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) {
      out.error = "cannot initialise the YAML parser";
      return out;
    }
    std::unique_ptr<yaml_parser_t, void (*)(yaml_parser_t*)> guard(&parser, yaml_parser_delete);
    yaml_parser_set_input_string(&parser, reinterpret_cast<const unsigned char*>(text.data()),
                                 text.size());
    // Containers being filled, with the key waiting for its value when the container is a map.
    struct Frame {
      Node node;
      std::string pendingKey;
      bool haveKey = false;
    };
    std::vector<Frame> stack;
    size_t nodes = 0;
    auto fail = [&](const std::string& why, size_t oneBasedLine) {
      out.documents.clear();
      out.error = "line " + std::to_string(oneBasedLine) + ": " + why;
    };
    // Places a finished node into its parent (or as the document).
    auto place = [&](Node&& node) -> bool {
      if (stack.empty()) {
        out.documents.push_back(std::move(node));
        return true;
      }
      Frame& parent = stack.back();
      if (parent.node.kind_ == Node::Kind::Sequence) {
        parent.node.seq_.push_back(std::move(node));
        return true;
      }
      if (!parent.haveKey) {
        if (node.kind_ != Node::Kind::Scalar && node.kind_ != Node::Kind::Null) {
          fail("a mapping key must be a scalar", node.line_);
          return false;
        }
        parent.pendingKey = node.scalar_;
        parent.haveKey = true;
        return true;
      }
      for (const auto& entry : parent.node.map_) {
        if (entry.first == parent.pendingKey) {
          fail("duplicate key \"" + parent.pendingKey + "\"", node.line_);
          return false;
        }
      }
      parent.node.map_.emplace_back(std::move(parent.pendingKey), std::move(node));
      parent.haveKey = false;
      return true;
    };
    for (;;) {
      yaml_event_t event;
      if (!yaml_parser_parse(&parser, &event)) {
        fail(parser.problem ? parser.problem : "invalid YAML", parser.problem_mark.line + 1);
        return out;
      }
      std::unique_ptr<yaml_event_t, void (*)(yaml_event_t*)> eventGuard(&event, yaml_event_delete);
      const size_t line = event.start_mark.line + 1;
      if (++nodes > kMaxNodes) {
        fail("too many nodes", line);
        return out;
      }
      switch (event.type) {
        case YAML_STREAM_END_EVENT:
          return out;
        case YAML_ALIAS_EVENT:
          fail("aliases are not supported in manifests", line);
          return out;
        case YAML_SCALAR_EVENT: {
          Node n;
          n.line_ = line;
          n.kind_ = isNullScalar(event) ? Node::Kind::Null : Node::Kind::Scalar;
          n.scalar_.assign(reinterpret_cast<const char*>(event.data.scalar.value),
                           event.data.scalar.length);
          if (!place(std::move(n))) return out;
          break;
        }
        case YAML_SEQUENCE_START_EVENT:
        case YAML_MAPPING_START_EVENT: {
          if (stack.size() >= kMaxDepth) {
            fail("nested too deeply", line);
            return out;
          }
          Frame f;
          f.node.line_ = line;
          f.node.kind_ =
              event.type == YAML_MAPPING_START_EVENT ? Node::Kind::Map : Node::Kind::Sequence;
          stack.push_back(std::move(f));
          break;
        }
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT: {
          Node n = std::move(stack.back().node);
          stack.pop_back();
          if (!place(std::move(n))) return out;
          break;
        }
        case YAML_DOCUMENT_END_EVENT:
          // An empty document ("---" alone) has no node: keep the count of documents honest.
          break;
        default:
          break;
      }
    }
  }
};

ParseResult parseAll(std::string_view text) { return TreeBuilder::parse(text); }

}  // namespace kuberelay::policy::yaml
