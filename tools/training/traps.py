"""Hand-written pairs a cache must get right: the model card's trap table and the model's tests."""

from __future__ import annotations

from typing import NamedTuple


class Trap(NamedTuple):
    a: str
    b: str
    label: int  # 1 = same intent (may share an answer), 0 = different
    kind: str


TRAPS = [
    Trap("How do I sort a list in ascending order in Python?", "How do I sort a list in descending order in Python?",
         0, "antonym"),
    Trap("How do I enable dark mode in VS Code?", "How do I disable dark mode in VS Code?", 0, "antonym"),
    Trap("How do I add a column to a table in PostgreSQL?", "How do I remove a column from a table in PostgreSQL?",
         0, "antonym"),
    Trap("How do I convert Celsius to Fahrenheit?", "How do I convert Fahrenheit to Celsius?", 0, "direction"),
    Trap("How do I translate a Python script to Java?", "How do I translate a Java program to Python?", 0,
         "direction"),
    Trap("How do I read a CSV file in Python?", "How do I read a CSV file in Java?", 0, "entity"),
    Trap("What is the capital of Australia?", "What is the capital of Austria?", 0, "entity"),
    Trap("How many bytes are in 5 GB?", "How many bytes are in 50 GB?", 0, "number"),
    Trap("How many kilometers are in 10 miles?", "How many meters are in 10 miles?", 0, "unit"),
    Trap("Why does my Python code crash?", "Why doesn't my Python code crash?", 0, "negation"),
    Trap("How do I sort a list in ascending order in Python?", "python sort list ascending", 1, "reworded"),
    Trap("How do I center a div in CSS?", "How can I center a div using CSS?", 1, "reworded"),
    Trap("What is the difference between TCP and UDP?", "What is the difference between UDP and TCP?", 1, "reordered"),
    Trap("How do I reverse a string in JavaScript?", "How do I revrese a strng in JavaScript?", 1, "typos"),
    Trap("What are the benefits of drinking green tea?", "Why is green tea good for you?", 1, "reworded"),
    Trap("How do I convert a string to an integer in JavaScript?",
         "How can I convert a string to an integer in JavaScript?", 1, "reworded"),
    Trap("How do I convert a string to an integer in JavaScript?",
         "How do I convert an integer to a string in JavaScript?", 0, "direction"),
]  # fmt: skip
