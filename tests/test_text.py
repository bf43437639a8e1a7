"""Text: the n-gram JS metric against hand-computed values, sentences and vocabulary, the text GAN."""

from __future__ import annotations

import math

import pytest
import torch

import dgflow
from dgflow.cli import main as cli_main
from dgflow.metrics import ngram_counts, ngram_js
from dgflow.text import (PAD, SEQ_LEN, UNK, OneHotSentences, Vocabulary, fixed_length, load_sentences, one_hot,
                         split_sentences)
from dgflow.text.data import billion_word_files, is_prose, pydoc_sentences
from dgflow.training.textgan import load_textgan, train_textgan
from dgflow.zoo import build_model, save_checkpoint
from dgflow.zoo.textgan import TextCritic, TextGenerator


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny models: one thread is faster, and much faster when another process holds a core."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ------------------------------------------------------------------------------ n-gram JS


def test_identical_sets_give_zero():
    s = ["the cat sat on the mat", "a dog"]
    for n in (1, 2, 4, 6):
        assert ngram_js(s, s, n) == pytest.approx(0.0, abs=1e-12)
    # the same n-gram frequencies from different sentences: only the frequencies matter
    assert ngram_js(["ab", "ba"], ["ba", "ab", "ab", "ba"], 1) == pytest.approx(0.0, abs=1e-12)


def test_disjoint_ngram_sets_give_one_bit():
    # no shared n-gram: M = (P + Q) / 2 is P/2 on P's support, so KL(P || M) = log 2, likewise for Q
    assert ngram_js(["aaaa"], ["bbbb"], 1) == pytest.approx(1.0)
    assert ngram_js(["aaaa"], ["bbbb"], 1, unit="nats") == pytest.approx(math.log(2))
    assert ngram_js(["abcd", "efgh"], ["abce", "xyzw"], 4) == pytest.approx(1.0)  # 4-grams differ, 1-grams not


def test_half_overlap_by_hand():
    # bigrams: generated "abc" -> {ab: 1/2, bc: 1/2}; real "abd" -> {ab: 1/2, bd: 1/2}
    # M = {ab: 1/2, bc: 1/4, bd: 1/4}; KL(P || M) = 1/2 log(1) + 1/2 log(2) = log(2) / 2 = KL(Q || M)
    # JS = 1/2 (log 2 / 2 + log 2 / 2) = log(2) / 2 nats = 0.5 bits
    assert ngram_js(["abc"], ["abd"], 2) == pytest.approx(0.5)
    assert ngram_js(["abc"], ["abd"], 2, unit="nats") == pytest.approx(math.log(2) / 2)


def test_asymmetric_case_by_hand():
    # unigrams: real "ab" -> P = {a: 1/2, b: 1/2}; generated "aab" -> Q = {a: 2/3, b: 1/3}
    # M = {a: 7/12, b: 5/12}
    # KL(P || M) = 1/2 log(6/7) + 1/2 log(6/5) = 1/2 (-0.1541507 + 0.1823216) = 0.0140854
    # KL(Q || M) = 2/3 log(8/7) + 1/3 log(4/5) = 2/3 (0.1335314) + 1/3 (-0.2231436) = 0.0146397
    # JS = (0.0140854 + 0.0146397) / 2 = 0.0143626 nats = 0.0143626 / log 2 = 0.0207208 bits
    kl_pm = 0.5 * math.log(6 / 7) + 0.5 * math.log(6 / 5)
    kl_qm = 2 / 3 * math.log(8 / 7) + 1 / 3 * math.log(4 / 5)
    assert kl_pm == pytest.approx(0.0140854, abs=1e-7) and kl_qm == pytest.approx(0.0146397, abs=1e-7)
    assert ngram_js(["aab"], ["ab"], 1, unit="nats") == pytest.approx(0.5 * (kl_pm + kl_qm), rel=1e-12)
    assert ngram_js(["aab"], ["ab"], 1) == pytest.approx(0.0207208, abs=1e-7)
    assert ngram_js(["ab"], ["aab"], 1) == pytest.approx(ngram_js(["aab"], ["ab"], 1))  # JS is symmetric


def test_ngram_counts_and_pad_ngrams():
    assert ngram_counts(["abab", "b"], 2) == {"ab": 2, "ba": 1}
    padded = fixed_length(["ab"], 4)
    assert padded == ["ab``"] and ngram_counts(padded, 2) == {"ab": 1, "b`": 1, "``": 1}


def test_ngram_js_errors():
    with pytest.raises(ValueError, match="n must be"):
        ngram_js(["abc"], ["abc"], 0)
    with pytest.raises(ValueError, match="no 4-grams"):
        ngram_js(["abc"], ["abcdef"], 4)
    with pytest.raises(TypeError, match="single string"):
        ngram_js("abcdef", ["abcdef"], 2)
    with pytest.raises(ValueError, match="unit"):
        ngram_js(["abc"], ["abc"], 1, unit="bytes")


# ------------------------------------------------------------------------ sentences and vocabulary


def test_vocabulary_round_trip_and_unknown_characters():
    vocab = Vocabulary.build(["hello world.", "Help!"])
    assert vocab.chars[:2] == (PAD, UNK) and vocab.chars[2] == "l"  # most frequent first
    sentences = ["hello world.", "Help!", "hoe"]
    ids = vocab.encode(sentences)
    assert ids.shape == (3, SEQ_LEN) and ids.dtype == torch.int64
    assert vocab.decode(ids) == sentences
    assert vocab.decode(one_hot(ids, vocab.size)) == sentences  # [N, V, L] one-hots decode by argmax
    assert vocab.decode(ids, strip=False)[2] == "hoe" + PAD * (SEQ_LEN - 3)
    assert vocab.decode(vocab.encode(["hi, zed"])) == [f"h{UNK}{UNK} {UNK}ed"]  # unseen characters
    assert Vocabulary.from_meta(vocab.to_meta()) == vocab
    with pytest.raises(ValueError, match="channels"):
        vocab.decode(torch.zeros(1, vocab.size + 1, SEQ_LEN))
    with pytest.raises(TypeError, match="list of sentences"):
        vocab.encode("hello")


def test_cut_and_pad_to_32_characters():
    long = "The quick brown fox jumps over the lazy dog again and again."
    vocab = Vocabulary.build([long])
    ids = vocab.encode([long, "he."])
    assert vocab.decode(ids) == [long[:32], "he."]
    assert (ids[1, 3:] == 0).all()  # pad index
    assert fixed_length([long, "he."]) == [long[:32], "he." + PAD * 29]
    x = OneHotSentences(ids, vocab.size)[torch.tensor([0, 1])]
    assert x.shape == (2, vocab.size, SEQ_LEN) and x.dtype == torch.float32
    assert torch.equal(x.sum(1), torch.ones(2, SEQ_LEN))


def test_pydoc_corpus_is_english_prose_and_split_is_fixed():
    sentences = pydoc_sentences()
    assert len(sentences) > 1000 and len(set(sentences)) == len(sentences)
    assert all(is_prose(s) and ">>>" not in s and "::=" not in s for s in sentences)
    assert not is_prose("if not expression: raise AssertionError") and not is_prose("x = [1, 2]  # list.")
    train, held = split_sentences(sentences)
    assert not set(train) & set(held) and len(train) + len(held) == len(sentences)
    assert 0.15 < len(held) / len(sentences) < 0.35
    assert split_sentences(sentences[::-1])[1] == held[::-1]  # by text, not by position


def test_billion_word_loader(tmp_path):
    folder = tmp_path / "1-billion-word" / "training-monolingual.tokenized.shuffled"
    folder.mkdir(parents=True)
    (folder / "news.en-00001-of-00100").write_text("The first line .\nA `quoted` one .\n\n", encoding="utf-8")
    (folder / "news.en-00002-of-00100").write_text("Another line here .\n", encoding="utf-8")
    assert [f.name for f in billion_word_files(tmp_path / "1-billion-word")] == [
        "news.en-00001-of-00100", "news.en-00002-of-00100"]
    lines = load_sentences("billion-word", tmp_path / "1-billion-word")
    assert lines == ["The first line .", "A 'quoted' one .", "Another line here ."]  # the pad character is replaced
    assert load_sentences("billion-word", folder / "news.en-00002-of-00100") == ["Another line here ."]
    assert load_sentences("billion-word", folder, max_sentences=1) == ["The first line ."]
    with pytest.raises(FileNotFoundError, match="--corpus pydoc"):
        load_sentences("billion-word", tmp_path / "nothing-here")
    with pytest.raises(ValueError, match="needs --data"):
        load_sentences("billion-word")
    with pytest.raises(ValueError, match="unknown corpus"):
        load_sentences("wikipedia")


# ------------------------------------------------------------------------------------ models


def test_model_shapes_and_simplex_outputs():
    torch.manual_seed(0)
    g = TextGenerator(vocab_size=11, channels=8, blocks=2)
    d = TextCritic(vocab_size=11, channels=8, blocks=2)
    p = g(torch.randn(3, 128))
    assert p.shape == (3, 11, 32)
    assert (p >= 0).all() and torch.allclose(p.sum(1), torch.ones(3, 32))
    assert d(p).shape == (3,)
    assert d(one_hot(torch.randint(11, (3, 32)), 11)).shape == (3,)
    with pytest.raises(ValueError, match=r"\[B, 11, 32\]"):
        d(torch.zeros(3, 32, 11))
    with pytest.raises(ValueError, match=r"\[B, 128\]"):
        g(torch.zeros(3, 64))
    default = build_model("text_generator", vocab_size=5)
    assert default.channels == 512 and len(default.blocks) == 5 and default.blocks[0].scale == 0.3


@pytest.fixture(scope="module")
def tiny_gan(tmp_path_factory):
    path = tmp_path_factory.mktemp("textgan") / "tiny.pt"
    torch.manual_seed(0)
    gan = train_textgan("pydoc", path, channels=8, blocks=1, iterations=3, seed=0, batch_size=16, progress=False)
    return path, gan


def test_training_smoke_and_checkpoint_round_trip(tiny_gan):
    path, gan = tiny_gan
    loaded = load_textgan(path)
    assert loaded.vocabulary == gan.vocabulary and loaded.meta["vocabulary"] == gan.vocabulary.to_meta()
    assert loaded.meta["iterations"] == 3 and loaded.meta["training"]["n_critic"] == 5
    assert loaded.meta["training"]["gp_weight"] == 10.0 and loaded.meta["training"]["lr"] == 1e-4
    assert len(loaded.meta["log"]) == 1 and math.isfinite(loaded.meta["final_log"]["loss_d"])
    z = torch.randn(4, 128)
    with torch.no_grad():
        assert torch.equal(loaded.generator(z), gan.generator(z))
        assert torch.equal(loaded.critic(gan.generator(z)), gan.critic(gan.generator(z)))


def test_load_textgan_refuses_other_checkpoints(tmp_path):
    path = tmp_path / "mlp.pt"
    save_checkpoint(path, {"generator": ("mlp_generator", {}, build_model("mlp_generator"))})
    with pytest.raises(ValueError, match="not a text GAN"):
        load_textgan(path)


@pytest.mark.parametrize("method,options", [("dgflow", {"f": "KL", "eta": 0.1, "steps": 3}),
                                            ("dgflow", {"f": "JS", "eta": 0.1, "steps": 3}),
                                            ("ddls", {"eps": 0.01, "steps": 3}),
                                            ("dot", {"lr": 0.01, "steps": 3})])
def test_refine_text_gan_gives_decodable_sentences(tiny_gan, method, options):
    _, gan = tiny_gan
    critic = dgflow.self_normalized(gan.critic, gan.critic(gan.generator(torch.randn(64, 128))))
    out = dgflow.refine(gan.generator, critic, n=8, latent_shape=(128,), method=method, seed=0, progress=False,
                        **options)
    assert out.x.shape == (8, gan.vocabulary.size, SEQ_LEN)
    assert torch.allclose(out.x.sum(1), torch.ones(8, SEQ_LEN), atol=1e-5)
    sentences = gan.vocabulary.decode(out.x, strip=False)
    assert len(sentences) == 8 and all(len(s) == SEQ_LEN and set(s) <= set(gan.vocabulary.chars) for s in sentences)
    assert 0.0 <= ngram_js(sentences, fixed_length(["The value of the object."]), 4) <= 1.0


def test_cli_train_textgan(tmp_path, capsys):
    data = tmp_path / "news.en-00001-of-00100"
    data.write_text("".join(f"Sentence number {i} of the tiny corpus .\n" for i in range(40)), encoding="utf-8")
    out = tmp_path / "cli.pt"
    assert cli_main(["train", "textgan", "--corpus", "billion-word", "--data", str(data), "--out", str(out),
                     "--iterations", "1", "--channels", "4", "--batch-size", "4"]) == 0
    assert "saved" in capsys.readouterr().out
    gan = load_textgan(out)
    assert gan.meta["corpus"] == "billion-word" and gan.meta["channels"] == 4
    assert cli_main(["train", "textgan", "--corpus", "billion-word", "--out", str(out)]) == 2
    assert "needs --data" in capsys.readouterr().err
