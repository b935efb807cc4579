namespace OnnxAttribution.Server;

/// <summary>
/// A request the server refuses or gives up on, with the status and message the client gets: a busy store (429) or a
/// drain (503), each with the seconds to wait as Retry-After, a timeout (504), a body or URL too large (413, 414), a wrong key (401).
/// </summary>
internal sealed class HttpProblem : Exception
{
    public HttpProblem(int status, string message, int? retryAfterSeconds = null, Exception? inner = null)
        : base(message, inner)
    {
        Status = status;
        RetryAfterSeconds = retryAfterSeconds;
    }

    public HttpProblem()
        : this(StatusCodes.Status500InternalServerError, "internal error")
    {
    }

    public HttpProblem(string message)
        : this(StatusCodes.Status500InternalServerError, message)
    {
    }

    public HttpProblem(string message, Exception inner)
        : base(message, inner)
    {
        Status = StatusCodes.Status500InternalServerError;
    }

    /// <summary>The HTTP status code.</summary>
    public int Status { get; }

    /// <summary>Seconds the client should wait before retrying (the Retry-After header), or null.</summary>
    public int? RetryAfterSeconds { get; }
}
