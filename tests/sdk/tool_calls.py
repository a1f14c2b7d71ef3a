"""The Anthropic and OpenAI Python SDKs against the gateway, each with a tool call, streamed and
not, on a Claude model (Anthropic upstream) and an OpenAI model (translated for /messages).

Usage: tool_calls.py <gateway URL> <agent token> <claude model> <openai model>
Prints one JSON object: what each SDK saw, keyed "<sdk>:<model>".
"""

import json
import sys

import anthropic
import openai

base, token, claude, gpt = sys.argv[1:5]
question = "Weather in Paris?"
out = {}

claude_sdk = anthropic.Anthropic(base_url=f"{base}/api/gate", api_key=token, max_retries=0)
tools = [{
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}]
asked = [{"role": "user", "content": question}]
for model in (claude, gpt):
    first = claude_sdk.messages.create(model=model, max_tokens=200, tools=tools, messages=asked)
    uses = [b for b in first.content if b.type == "tool_use"]
    seen = {
        "stop_reason": first.stop_reason,
        "tool": uses[0].input if uses else None,
        "text": "".join(b.text for b in first.content if b.type == "text"),
        "input_tokens": first.usage.input_tokens,
    }
    if uses:
        answered = asked + [
            {"role": "assistant", "content": first.content},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": uses[0].id, "content": "sunny"}]},
        ]
        second = claude_sdk.messages.create(model=model, max_tokens=200, tools=tools, messages=answered)
        seen["after_tool"] = "".join(b.text for b in second.content if b.type == "text")
    with claude_sdk.messages.stream(model=model, max_tokens=200, tools=tools, messages=asked) as stream:
        final = stream.get_final_message()
    seen["stream_tool"] = next((b.input for b in final.content if b.type == "tool_use"), None)
    seen["stream_text"] = "".join(b.text for b in final.content if b.type == "text")
    seen["stream_output_tokens"] = final.usage.output_tokens
    out[f"anthropic:{model}"] = seen

openai_sdk = openai.OpenAI(base_url=f"{base}/api/gate/v1", api_key=token, max_retries=0,
                           http_client=openai.DefaultHttpxClient())
functions = [{"type": "function", "function": {
    "name": "get_weather", "description": "Weather for a city", "parameters": tools[0]["input_schema"]}}]
for model in (claude, gpt):
    messages = [{"role": "user", "content": question}]
    reply = openai_sdk.chat.completions.create(model=model, messages=messages, tools=functions)
    calls = reply.choices[0].message.tool_calls or []
    seen = {
        "finish": reply.choices[0].finish_reason,
        "tool": json.loads(calls[0].function.arguments) if calls else None,
        "text": reply.choices[0].message.content,
    }
    stream = openai_sdk.chat.completions.create(
        model=model, messages=messages, tools=functions, stream=True, stream_options={"include_usage": True})
    arguments, text, usage = "", "", None
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage.completion_tokens
        for choice in chunk.choices:
            text += choice.delta.content or ""
            for call in choice.delta.tool_calls or []:
                arguments += call.function.arguments or ""
    seen["stream_tool"] = json.loads(arguments) if arguments else None
    seen["stream_text"] = text
    seen["stream_completion_tokens"] = usage
    out[f"openai:{model}"] = seen

print(json.dumps(out))
