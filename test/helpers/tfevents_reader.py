#!/usr/bin/python3
"""Reads TensorBoard event files independently of bnlab's writer: TFRecord framing with its own
CRC32C (Castagnoli, table-driven, written here from the polynomial), and tensorflow.Event /
Summary messages decoded by Google's protobuf runtime from descriptors built here with the field
numbers of tensorboard/compat/proto/{event,summary}.proto. Prints JSON: one object per event.

    test/helpers/tfevents_reader.py FILE...
"""
import json
import struct
import sys

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

POLY = 0x82F63B78  # CRC-32C, reflected
TABLE = []
for i in range(256):
    c = i
    for _ in range(8):
        c = (c >> 1) ^ POLY if c & 1 else c >> 1
    TABLE.append(c)


def crc32c(data):
    c = 0xFFFFFFFF
    for b in data:
        c = TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def masked(data):
    c = crc32c(data)
    return ((((c >> 15) | (c << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def messages():
    f = descriptor_pb2.FileDescriptorProto(name='tb_event_reader.proto', package='tbr', syntax='proto3')
    summary = f.message_type.add(name='Summary')
    value = summary.nested_type.add(name='Value')
    value.oneof_decl.add(name='value')
    value.field.add(name='tag', number=1, type=9, label=1)
    value.field.add(name='simple_value', number=2, type=2, label=1, oneof_index=0)
    summary.field.add(name='value', number=1, type=11, label=3, type_name='.tbr.Summary.Value')
    event = f.message_type.add(name='Event')
    event.oneof_decl.add(name='what')
    event.field.add(name='wall_time', number=1, type=1, label=1)
    event.field.add(name='step', number=2, type=3, label=1)
    event.field.add(name='file_version', number=3, type=9, label=1, oneof_index=0)
    event.field.add(name='summary', number=5, type=11, label=1, type_name='.tbr.Summary', oneof_index=0)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(f)
    return message_factory.MessageFactory(pool).GetPrototype(pool.FindMessageTypeByName('tbr.Event'))


def read(path, Event):
    data = open(path, 'rb').read()
    pos = 0
    while pos < len(data):
        head = data[pos:pos + 8]
        (length,) = struct.unpack('<Q', head)
        (crc_len,) = struct.unpack('<I', data[pos + 8:pos + 12])
        if crc_len != masked(head):
            raise SystemExit(f'{path}: bad length CRC at byte {pos}')
        body = data[pos + 12:pos + 12 + length]
        (crc_body,) = struct.unpack('<I', data[pos + 12 + length:pos + 16 + length])
        if len(body) != length or crc_body != masked(body):
            raise SystemExit(f'{path}: bad record CRC at byte {pos}')
        e = Event()
        e.ParseFromString(body)
        out = {'file': path, 'wall_time': e.wall_time, 'step': e.step}
        if e.WhichOneof('what') == 'file_version':
            out['file_version'] = e.file_version
        elif e.WhichOneof('what') == 'summary':
            out['scalars'] = {v.tag: v.simple_value for v in e.summary.value if v.WhichOneof('value') == 'simple_value'}
        yield out
        pos += 16 + length


if __name__ == '__main__':
    Event = messages()
    print(json.dumps([e for p in sys.argv[1:] for e in read(p, Event)]))
