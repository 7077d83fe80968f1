"""YAML reading for configs: safe, floats like 7e-5, no duplicate keys."""
import re

import yaml

from .rules import ConfigError


class YamlLoader(yaml.SafeLoader):
    """Safe YAML loader that reads ``7e-5`` as a float and rejects duplicate keys.

    YAML 1.1 (PyYAML) only treats ``7.0e-5`` as a float and reads ``7e-5`` as
    the string "7e-5"; a repeated key would silently keep the last value.
    """

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, (str, int, float, bool)) and key in seen:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping", node.start_mark,
                    f"found duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."))


def parse_yaml(text, source):
    try:
        return yaml.load(text, Loader=YamlLoader)
    except yaml.YAMLError as err:
        raise ConfigError(f"cannot parse {source} as YAML: {err}") from None
